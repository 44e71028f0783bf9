// Where a Model node's weights come from:
//   'builtin:demo'        the shipped demo model, models/demo/ in the studio's folder
//   'builtin:demo-moe'    the shipped mixture-of-experts demo, models/demo-moe/ (BUILTIN_MODELS)
//   'init:<config.json>'  random initialisation from that config (engine.createModel, seeded by
//                         pipeline.seed); its tokenizer.json sits next to the config
//   anything else         a Hugging Face directory (config.json, *.safetensors, tokenizer.json)
// Relative paths resolve against the current directory, like dataset paths.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILTIN_MODELS } from '../../core/schema';
import type { BackendChoice, EngineApi, EngineModel, ModelConfig } from '../../native/engine-api';
import { MAX_CONFIG_BYTES } from '../../native/checkpoint/config';
import { readRegularFile } from '../../native/checkpoint/regular-file';

export const DEMO_MODEL_DIR = fileURLToPath(new URL('../../models/demo', import.meta.url));


export type ResolvedModel =
  | { kind: 'dir'; dir: string; tokenizer: string }
  | { kind: 'init'; configPath: string; tokenizer: string };

export function resolveModelSource(source: string, baseDir = process.cwd()): ResolvedModel {
  const builtin = source.startsWith('builtin:') ? source.slice('builtin:'.length) : null;
  if (builtin !== null && BUILTIN_MODELS.includes(builtin)) return checkDir(join(dirname(DEMO_MODEL_DIR), builtin), source);
  if (source.startsWith('init:')) {
    const configPath = resolve(baseDir, source.slice('init:'.length));
    if (!existsSync(configPath)) throw new Error(`model.source: ${configPath}: no such config file`);
    const tokenizer = join(dirname(configPath), 'tokenizer.json');
    if (!existsSync(tokenizer)) throw new Error(`model.source: ${tokenizer}: no tokenizer.json next to the config`);
    return { kind: 'init', configPath, tokenizer };
  }
  return checkDir(resolve(baseDir, source), source);
}

function checkDir(dir: string, source: string): ResolvedModel {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`model.source: '${source}': ${dir} is not a directory`);
  for (const f of ['config.json', 'tokenizer.json']) {
    if (!existsSync(join(dir, f))) throw new Error(`model.source: ${join(dir, f)}: missing`);
  }
  if (!readdirSync(dir).some((f) => f.endsWith('.safetensors'))) throw new Error(`model.source: ${dir}: no .safetensors weights`);
  return { kind: 'dir', dir, tokenizer: join(dir, 'tokenizer.json') };
}

/** An init: config.json: a regular file of bounded size, opened non-blocking (no FIFO hang, no /dev/zero flood). */
function readConfigText(file: string): string {
  try {
    return readRegularFile(file, MAX_CONFIG_BYTES).toString('utf8');
  } catch (e) {
    throw new Error(`model.source: ${(e as Error).message}`);
  }
}

/** Loads (or initialises) the base model. Called again to get a fresh base for rollback/resume. */
export async function loadBaseModel(engine: EngineApi, model: ResolvedModel, seed: number, threads: number, placement: BackendChoice = {}): Promise<EngineModel> {
  if (model.kind === 'dir') return engine.loadModel(model.dir, { threads, ...placement });
  let config: ModelConfig;
  const text = readConfigText(model.configPath);
  try {
    config = JSON.parse(text) as ModelConfig;
  } catch (e) {
    throw new Error(`model.source: ${model.configPath}: not valid JSON (${(e as Error).message})`);
  }
  return engine.createModel(config, { seed, threads, ...placement });
}

/** sha256 over the weight files (sorted by name), or over the config and seed for 'init:'. */
export async function modelContentHash(model: ResolvedModel, seed: number): Promise<string> {
  const hash = createHash('sha256');
  if (model.kind === 'init') {
    hash.update(readConfigText(model.configPath));
    hash.update(`seed:${seed}`);
    return hash.digest('hex');
  }
  const files = readdirSync(model.dir).filter((f) => f.endsWith('.safetensors')).sort();
  for (const f of files) {
    await new Promise<void>((res, rej) => {
      createReadStream(join(model.dir, f)).on('data', (c) => hash.update(c)).on('end', () => res()).on('error', rej);
    });
  }
  return hash.digest('hex');
}
