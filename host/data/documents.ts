// Turns a Dataset node's source into documents: the built-in Brown Corpus, one .txt file, one
// .jsonl file (one document per line, text in a configurable field), or a folder of them.
// A document is the unit of the train/validation split; `group` is what the split stratifies on
// (the genre for Brown, the sub-folder for a folder of files).
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { DatasetParams } from '../../core/schema';
import { loadBrownDocuments } from './brown';
import { DataError } from './errors';
import { readTextFile } from './text-file';

export interface TextDocument {
  /** Stable name: Brown text id, relative file path, or `file:line` for JSONL. */
  id: string;
  group: string;
  text: string;
}

export const BUILTIN_BROWN = 'builtin:brown';

type FileFormat = 'txt' | 'jsonl';
const EXTENSION_FORMAT: Record<string, FileFormat> = { '.txt': 'txt', '.text': 'txt', '.md': 'txt', '.jsonl': 'jsonl', '.ndjson': 'jsonl' };

/** The format of one file: the explicit one, or by extension under 'auto'. */
function formatOf(file: string, format: DatasetParams['format']): FileFormat {
  if (format !== 'auto') return format;
  const byExtension = EXTENSION_FORMAT[path.extname(file).toLowerCase()];
  if (!byExtension) {
    throw new DataError('DATA_BAD_FORMAT', `${file}: cannot tell the format from the extension "${path.extname(file)}"; set format to "txt" or "jsonl"`);
  }
  return byExtension;
}

/** Documents of one JSONL file: one per non-blank line, its text in `field`. */
export function parseJsonl(text: string, file: string, field: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].trim();
    if (raw.length === 0) continue;
    const where = `${file}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      throw new DataError('DATA_BAD_JSONL', `${where}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new DataError('DATA_BAD_JSONL', `${where}: expected a JSON object with a "${field}" field`);
    }
    if (!(field in value)) throw new DataError('DATA_BAD_JSONL', `${where}: missing field "${field}"`);
    const fieldValue = (value as Record<string, unknown>)[field];
    if (typeof fieldValue !== 'string') {
      throw new DataError('DATA_BAD_JSONL', `${where}: field "${field}" is ${fieldValue === null ? 'null' : typeof fieldValue}, expected a string`);
    }
    if (fieldValue.trim().length > 0) out.push({ line: i + 1, text: fieldValue });
  }
  if (out.length === 0) throw new DataError('DATA_EMPTY', `${file}: no non-empty "${field}" values`);
  return out;
}

function documentsOfFile(file: string, id: string, group: string, format: FileFormat, field: string): TextDocument[] {
  const text = readTextFile(file);
  if (format === 'txt') return [{ id, group, text }];
  return parseJsonl(text, file, field).map((d) => ({ id: `${id}:${d.line}`, group, text: d.text }));
}

/** Text files under `dir` (recursively, hidden entries skipped), sorted for a stable order. */
function listTextFiles(dir: string, format: DatasetParams['format']): string[] {
  const out: string[] = [];
  const walk = (current: string) => {
    for (const name of readdirSync(current).sort()) {
      if (name.startsWith('.')) continue;
      const full = path.join(current, name);
      const stat = statSync(full);
      if (stat.isDirectory()) walk(full);
      else if (stat.isFile()) {
        const byExtension = EXTENSION_FORMAT[path.extname(name).toLowerCase()];
        if (byExtension && (format === 'auto' || format === byExtension)) out.push(full);
      }
    }
  };
  walk(dir);
  return out;
}

/** Reads every document of a dataset source. `baseDir` resolves relative paths (default: cwd). */
export function readDocuments(params: DatasetParams, baseDir = process.cwd()): TextDocument[] {
  if (typeof params.source !== 'string' || params.source.trim() === '') {
    throw new DataError('DATA_BAD_PARAMS', 'dataset.source: empty; use "builtin:brown" or a .txt/.jsonl file or folder');
  }
  if (params.source === BUILTIN_BROWN) return loadBrownDocuments();
  if (params.source.startsWith('builtin:')) {
    throw new DataError('DATA_BAD_PARAMS', `dataset.source: unknown built-in "${params.source}" (known: ${BUILTIN_BROWN})`);
  }
  const source = path.resolve(baseDir, params.source);
  const field = params.text_field;
  let stat;
  try {
    stat = statSync(source);
  } catch {
    throw new DataError('DATA_NOT_FOUND', `${source}: no such file or folder`);
  }
  const needsField = (format: FileFormat) => {
    if (format === 'jsonl' && (typeof field !== 'string' || field === '')) {
      throw new DataError('DATA_BAD_PARAMS', 'dataset.text_field: empty; JSONL needs the name of the field that holds the text');
    }
  };
  if (!stat.isFile() && !stat.isDirectory()) {
    throw new DataError('DATA_NOT_REGULAR', `${source}: not a regular file or folder`);
  }
  if (stat.isFile()) {
    const format = formatOf(source, params.format);
    needsField(format);
    return documentsOfFile(source, path.basename(source), 'all', format, field);
  }
  const files = listTextFiles(source, params.format);
  if (files.length === 0) {
    const wanted = params.format === 'auto' ? '.txt or .jsonl' : `.${params.format}`;
    throw new DataError('DATA_NO_TEXT_FILES', `${source}: folder has no ${wanted} files`);
  }
  return files.flatMap((file) => {
    const format = formatOf(file, params.format === 'auto' ? 'auto' : params.format);
    needsField(format);
    const relative = path.relative(source, file);
    const group = path.dirname(relative) === '.' ? 'all' : path.dirname(relative);
    return documentsOfFile(file, relative, group, format, field);
  });
}
