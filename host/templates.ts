// Pipeline templates: the *.json files in templates/. The id is the file name without .json.
// Files in an older schema version are migrated on read, as an import would.
// A broken template file never hides the others: listing skips it with a one-line warning,
// opening it fails with a message naming the file.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TemplateSummary } from '../core/api';
import { migratePipeline } from '../core/migrate';
import type { Pipeline } from '../core/schema';

export class TemplateError extends Error {
  constructor(readonly code: 'not_found' | 'bad_request' | 'bad_template', message: string) {
    super(message);
    this.name = 'TemplateError';
  }
}

/** Ids are plain file stems: no separators, no dot-dot, so an id can never leave the folder. */
const TEMPLATE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$/;

export async function listTemplates(dir: string, warn: (line: string) => void = console.warn): Promise<TemplateSummary[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    warn(`templates: cannot read folder ${dir}`);
    return [];
  }
  const summaries: TemplateSummary[] = [];
  for (const file of names.filter((n) => n.endsWith('.json')).sort()) {
    const id = file.slice(0, -'.json'.length);
    if (!TEMPLATE_ID.test(id)) continue;
    try {
      const info = templateInfo(await readTemplateJson(dir, id));
      summaries.push({ id, name: info.name, description: info.description });
    } catch (error) {
      warn(`templates: skipping ${file}: ${(error as Error).message}`);
    }
  }
  return summaries;
}

/** The template's pipeline, migrated to the current version (the caller validates it). */
export async function readTemplate(dir: string, id: string): Promise<Pipeline> {
  const value = await readTemplateJson(dir, id);
  templateInfo(value);
  return value as Pipeline;
}

async function readTemplateJson(dir: string, id: string): Promise<unknown> {
  if (typeof id !== 'string' || !TEMPLATE_ID.test(id)) throw new TemplateError('bad_request', `template id "${String(id).slice(0, 80)}" is not a template file name`);
  let text: string;
  try {
    text = await readFile(join(dir, `${id}.json`), 'utf8');
  } catch {
    throw new TemplateError('not_found', `template "${id}" not found`);
  }
  try {
    return migratePipeline(JSON.parse(text)).value;
  } catch (error) {
    throw new TemplateError('bad_template', `${id}.json is not valid JSON (${(error as Error).message.split('\n')[0]})`);
  }
}

function templateInfo(value: unknown): { name: string; description: string } {
  const info = (value as { info?: { name?: unknown; description?: unknown } } | null)?.info;
  if (!info || typeof info.name !== 'string' || info.name.trim() === '') {
    throw new TemplateError('bad_template', 'info.name is missing or not a string');
  }
  return { name: info.name, description: typeof info.description === 'string' ? info.description : '' };
}
