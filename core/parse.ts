// Reading a pipeline file: JSON syntax (with line and column), then migration to the
// current version, then validation. Every importer (CLI, editor, server) goes through here.
//
// Owned by core/: no Node, DOM or Electron imports here.
import type { ValidationProblem } from './api';
import type { Pipeline } from './schema';
import { parseJson } from './json';
import { migratePipeline } from './migrate';
import { ROOT_PATH, validatePipeline } from './validate';

export type ParseResult =
  | { pipeline: Pipeline; migratedFrom: number | null; migrations: string[] }
  | { problems: ValidationProblem[] };

/**
 * Largest pipeline text the studio reads, whichever way it comes (file, upload, IPC or
 * WebSocket call): a large pipeline with its layout is ~100 kB, so 8 MiB is far past any real
 * one and bounds what a parse and a validation may cost.
 */
export const MAX_PIPELINE_BYTES = 8 * 1024 * 1024;

/** `fileName` only shapes messages (an empty file says which file); it is never opened. */
export function parsePipelineText(text: string, fileName: string): ParseResult {
  if (text.length > MAX_PIPELINE_BYTES) {
    return { problems: [{ path: ROOT_PATH, message: `${fileName || 'the pipeline'} is ${text.length} characters; pipelines are at most ${MAX_PIPELINE_BYTES}` }] };
  }
  if (text.trim() === '') return { problems: [{ path: ROOT_PATH, message: `${fileName || 'the file'} is empty (expected a pipeline JSON object)` }] };
  const parsed = parseJson(text);
  if (!parsed.ok) {
    return { problems: [{ path: ROOT_PATH, message: `not valid JSON at line ${parsed.line}, column ${parsed.column}: ${parsed.message}` }] };
  }
  const migrated = migratePipeline(parsed.value);
  const problems = validatePipeline(migrated.value);
  if (problems.length > 0) return { problems };
  return {
    pipeline: migrated.value as Pipeline,
    migratedFrom: migrated.applied.length > 0 ? migrated.from : null,
    migrations: migrated.applied,
  };
}
