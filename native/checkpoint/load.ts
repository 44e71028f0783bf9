// Loads a Hugging Face model directory: config.json plus model.safetensors, or shards listed in
// model.safetensors.index.json. Checks the tensor set against the config: every expected tensor
// present with its shape, nothing unexpected (except buffers HF itself never loads).
import { existsSync, readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import type { ModelConfig } from '../engine-api';
import { CheckpointError, configToJson, expectedTensors, readModelConfig } from './config';
import { SafetensorsFile, writeSafetensors } from './safetensors';

export interface Checkpoint { config: ModelConfig; tensors: Map<string, Float32Array> }

// Non-parameter buffers some exporters write; the model never reads them.
const IGNORED = [/\.rotary_emb\.inv_freq$/];

/** Which file holds each tensor: one file, or the shard map of the index. */
function tensorFiles(dir: string): { files: string[]; weightMap: Map<string, string> | null } {
  const single = join(dir, 'model.safetensors');
  const indexFile = join(dir, 'model.safetensors.index.json');
  if (existsSync(single)) return { files: [single], weightMap: null };
  if (!existsSync(indexFile)) throw new CheckpointError(`${dir}: no model.safetensors or model.safetensors.index.json`);
  let index: unknown;
  try {
    index = JSON.parse(readFileSync(indexFile, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`${indexFile}: not valid JSON (${(e as Error).message})`);
  }
  const map = (index as { weight_map?: unknown })?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new CheckpointError(`${indexFile}: weight_map: must be an object`);
  const weightMap = new Map<string, string>();
  const root = resolve(dir);
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    if (typeof shard !== 'string' || !shard.endsWith('.safetensors')) throw new CheckpointError(`${indexFile}: weight_map.${name}: must name a .safetensors file`);
    const path = resolve(dir, shard);
    if (!path.startsWith(root + sep)) throw new CheckpointError(`${indexFile}: weight_map.${name}: shard ${shard} is outside the model directory`);
    weightMap.set(name, path);
  }
  return { files: [...new Set(weightMap.values())], weightMap };
}

/** Reads and checks a checkpoint directory; throws CheckpointError with one line on any fault. */
export function loadCheckpoint(dir: string): Checkpoint {
  const config = readModelConfig(dir);
  const expected = expectedTensors(config);
  const { files, weightMap } = tensorFiles(dir);
  const opened = new Map<string, SafetensorsFile>();
  try {
    const where = new Map<string, SafetensorsFile>();
    for (const file of files) {
      const st = SafetensorsFile.open(file);
      opened.set(file, st);
      for (const name of st.tensors.keys()) {
        if (where.has(name)) throw new CheckpointError(`${file}: tensor ${name} also appears in ${where.get(name)!.file}`);
        if (weightMap && weightMap.get(name) !== file) throw new CheckpointError(`${file}: tensor ${name} is not listed for this shard in model.safetensors.index.json`);
        where.set(name, st);
      }
    }
    // The bytes config.json implies (at 2 bytes a value, the smallest dtype read) against what the
    // files hold, before any tensor is allocated: a config that does not fit its weights fails here.
    let needed = 0;
    for (const { shape } of expected) needed += shape.reduce((a, b) => a * b, 1) * 2;
    let held = 0;
    for (const st of opened.values()) held += st.dataBytes;
    if (needed > held) {
      throw new CheckpointError(`${join(dir, 'config.json')}: describes tensors of at least ${needed} bytes, but the safetensors data holds ${held} bytes`);
    }
    const tensors = new Map<string, Float32Array>();
    const wanted = new Set<string>();
    for (const { name, shape } of expected) {
      wanted.add(name);
      const st = where.get(name);
      if (!st) {
        const shard = weightMap?.get(name);
        throw new CheckpointError(`${shard ?? files[0]}: missing tensor ${name}`);
      }
      const info = st.tensors.get(name)!;
      if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
        throw new CheckpointError(`${st.file}: tensor ${name}: shape ${JSON.stringify(info.shape)} disagrees with config.json (expected ${JSON.stringify(shape)})`);
      }
      tensors.set(name, st.read(name).data);
    }
    for (const [name, st] of where) {
      if (wanted.has(name) || IGNORED.some((re) => re.test(name))) continue;
      // Tied checkpoints sometimes carry lm_head.weight too; HF ignores it, so do we.
      if (name === 'lm_head.weight' && config.tie_word_embeddings) continue;
      throw new CheckpointError(`${st.file}: unexpected tensor ${name} (not part of a ${config.model_type} model with this config.json)`);
    }
    if (weightMap) {
      for (const name of weightMap.keys()) {
        if (!where.has(name)) throw new CheckpointError(`${weightMap.get(name)}: tensor ${name} listed in model.safetensors.index.json is not in the shard`);
      }
    }
    return { config, tensors };
  } finally {
    for (const st of opened.values()) st.close();
  }
}

/** Writes DIR/config.json and DIR/model.safetensors (F32) in expectedTensors order. */
export function saveCheckpoint(dir: string, config: ModelConfig, tensors: Map<string, Float32Array>): void {
  mkdirSync(dir, { recursive: true });
  const list = expectedTensors(config).map(({ name, shape }) => {
    const data = tensors.get(name);
    if (!data) throw new CheckpointError(`${dir}: cannot save, tensor ${name} is missing`);
    return { name, shape, data };
  });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(configToJson(config), null, 2) + '\n');
  writeSafetensors(join(dir, 'model.safetensors'), list, { format: 'pt' });
}
