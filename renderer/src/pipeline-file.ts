// Pipeline files in and out of the editor: canonical JSON on export (byte-identical for one
// graph), and a forgiving import that loads anything shaped like a pipeline so the problems
// panel can show what is wrong, but rejects what is not a pipeline at all with one line.
import type { Pipeline } from '../../core/schema';
import { PIPELINE_VERSION } from '../../core/schema';
import { canonicalJson } from '../../core/canonical';
import { parseJson } from '../../core/json';
import { migratePipeline } from '../../core/migrate';
import { validatePipeline } from '../../core/validate';
import type { ValidationProblem } from '../../core/api';

export function exportPipelineText(pipeline: Pipeline): string {
  return canonicalJson(pipeline);
}

/** A file name from the pipeline's name: "Quick demo" -> "quick-demo.pipeline.json". */
export function suggestedFileName(pipeline: Pipeline): string {
  const slug = pipeline.info.name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'pipeline';
  return `${slug}.pipeline.json`;
}

export interface ImportedPipeline {
  pipeline: Pipeline;
  problems: ValidationProblem[];
  /** Migrations applied to an older file (core/migrate.ts), in order; empty for a current one. */
  migrations: string[];
}

/** Parses a pipeline file; throws `FILE: message` when it cannot be edited at all. */
export function importPipelineText(text: string, fileName: string): ImportedPipeline {
  const parsed = parseJson(text);
  if (!parsed.ok) throw new Error(`${fileName}: not valid JSON at line ${parsed.line}, column ${parsed.column}: ${parsed.message}`);
  // Older versions migrate first (the same code the CLI runs), then the checks below apply.
  const migrated = migratePipeline(parsed.value);
  const value = migrated.value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${fileName}: a pipeline must be a JSON object`);
  const record = value as Record<string, unknown>;
  if (typeof record.version !== 'number') throw new Error(`${fileName}: version: missing or not a number (this build reads version ${PIPELINE_VERSION})`);
  if (record.version > PIPELINE_VERSION) throw new Error(`${fileName}: version: ${record.version} is newer than this build reads (${PIPELINE_VERSION})`);
  if (!Array.isArray(record.nodes)) throw new Error(`${fileName}: nodes: expected an array of nodes`);
  if (!Array.isArray(record.links)) throw new Error(`${fileName}: links: expected an array of links`);
  for (const [i, node] of (record.nodes as unknown[]).entries()) {
    const n = node as Record<string, unknown> | null;
    if (!n || typeof n.id !== 'string' || typeof n.kind !== 'string' || typeof n.params !== 'object' || n.params === null) {
      throw new Error(`${fileName}: nodes[${i}]: expected an object with string id, string kind and params`);
    }
  }
  const info = (record.info ?? {}) as Record<string, unknown>;
  const pipeline = {
    ...record,
    info: { name: String(info.name ?? fileName.replace(/\.(pipeline\.)?json$/i, '')), author: String(info.author ?? ''), description: String(info.description ?? '') },
  } as unknown as Pipeline;
  return { pipeline, problems: validatePipeline(pipeline), migrations: migrated.applied };
}

/** The pipeline without editor-only parts: what the runner reads. */
export function semanticPart(pipeline: Pipeline): Omit<Pipeline, 'layout'> {
  const { layout: _layout, ...rest } = pipeline;
  return rest;
}
