// export-torch: writes a self-contained PyTorch project that replays a pipeline (train.py and its
// modules from ./python, plan.json, the token streams, launch.sh, requirements.txt, README.md).
//
// Design choices:
// - The project replays the pipeline, not a translation of it: plan.json embeds the pipeline's
//   canonical JSON (core/canonical.ts) and its sha256, plus the stage list from core/order.ts,
//   so the Python side and the studio agree on stages, operations and their order.
// - Data is written, not re-tokenised: per Dataset node the packed train and validation streams
//   the studio trains on (host/data), in the binary format documented in python/data.py. The
//   batch order (a pure function of seed, step, batch and length) is recomputed in Python with
//   the studio's seeded arithmetic, so batches match step for step.
// - The base model is referenced by absolute path (train.py --model overrides it); weights are
//   Hugging Face safetensors, read by the project's own loader.
// - What the Python side cannot replay exactly is refused here with one line: random
//   initialisation ('init:' sources), the trainable indexer selector and mixture-of-experts models.
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, writeFileSync, chmodSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NodeOf, Pipeline } from '../../core/schema';
import { canonicalJson } from '../../core/canonical';
import { stagesOf, trailingOps } from '../../core/order';
import { resolveSeeds } from '../../core/seeds';
import { loadDataset } from '../data/dataset';
import { maxSeqLen } from '../data/curriculum';
import { modelContentHash, resolveModelSource } from '../runner/model-source';
import { readModelConfig } from '../../native/checkpoint/config';
import { launchScript, projectReadme, REQUIREMENTS } from './project-files';

export const PYTHON_DIR = fileURLToPath(new URL('./python', import.meta.url));
export const PLAN_FORMAT = 'sparse-studio-torch/1';
/** Token file layout (python/data.py documents it). */
export const TOKENS_MAGIC = 'SSTOKENS';
const HEADER_BYTES = 48;

export interface ExportTorchOptions {
  studioVersion?: string;
  cacheDir?: string;
  onLog?: (line: string) => void;
}

export interface ExportTorchResult { dir: string; files: string[]; pipelineSha256: string }

function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

const MOE_NOT_YET = 'mixture-of-experts models (qwen3_moe) are not in the PyTorch export yet; run the pipeline in the studio';

/** Why the PyTorch project cannot replay this pipeline, or null. */
export function exportProblem(pipeline: Pipeline): string | null {
  const model = pipeline.nodes.find((n) => n.kind === 'model') as NodeOf<'model'> | undefined;
  if (!model) return 'nodes: the pipeline has no Model node';
  if (model.params.source.startsWith('init:')) return `${model.id}.source: 'init:' models are initialised by the engine's own generator; train them in the studio first and export from the checkpoint`;
  const balanced = pipeline.nodes.find((n) => n.kind === 'train' && (n.params.load_balance ?? 'none') !== 'none');
  if (balanced) return `${balanced.id}.load_balance: ${MOE_NOT_YET}`;
  for (const n of pipeline.nodes) {
    if (n.kind === 'replace' && n.params.mask.selector === 'indexer' && n.params.mask.topk_blocks > 0) {
      return `${n.id}.mask.selector: the trainable indexer is not in the PyTorch export yet (use pooled or none)`;
    }
  }
  return null;
}

/** The binary token file of one dataset: header, train stream, validation stream (int32 LE). */
export function tokenFile(train: Int32Array, validation: Int32Array, info: { seed: number; vocabSize: number; eosId: number }): Buffer {
  const buf = Buffer.alloc(HEADER_BYTES + 4 * (train.length + validation.length));
  buf.write(TOKENS_MAGIC, 0, 'ascii');
  buf.writeUInt32LE(1, 8);            // format version
  buf.writeUInt32LE(1, 12);           // dtype: int32
  buf.writeInt32LE(info.seed | 0, 16);
  buf.writeUInt32LE(info.vocabSize, 20);
  buf.writeInt32LE(info.eosId, 24);
  buf.writeUInt32LE(0, 28);
  buf.writeBigUInt64LE(BigInt(train.length), 32);
  buf.writeBigUInt64LE(BigInt(validation.length), 40);
  Buffer.from(train.buffer, train.byteOffset, train.byteLength).copy(buf, HEADER_BYTES);
  Buffer.from(validation.buffer, validation.byteOffset, validation.byteLength).copy(buf, HEADER_BYTES + train.byteLength);
  return buf;
}

export async function exportTorch(written: Pipeline, outDir: string, options: ExportTorchOptions = {}): Promise<ExportTorchResult> {
  const log = options.onLog ?? (() => {});
  // The file as written is what the hash names; the run uses its resolved seeds (core/seeds.ts),
  // as the engine's executor does.
  const pipeline = resolveSeeds(written);
  const problem = exportProblem(pipeline);
  if (problem) throw new Error(problem);
  const model = pipeline.nodes.find((n) => n.kind === 'model') as NodeOf<'model'>;
  const source = resolveModelSource(model.params.source);
  if (source.kind !== 'dir') throw new Error(`${model.id}.source: not a model directory`);
  // The project's model.py is a dense decoder: a MoE checkpoint would train the wrong model.
  const config = readModelConfig(source.dir);
  if ((config.num_experts ?? 0) > 0) throw new Error(`${model.id}.source: ${MOE_NOT_YET}`);
  const stages = stagesOf(pipeline);
  const byId = new Map(pipeline.nodes.map((n) => [n.id, n]));
  const dir = resolve(outDir);
  mkdirSync(join(dir, 'data'), { recursive: true });
  const files: string[] = [];
  const write = (name: string, data: string | Buffer) => { writeFileSync(join(dir, name), data); files.push(name); };

  // Data: every Dataset node a stage trains or gates on.
  const datasetIds = [...new Set(stages.flatMap((s) => [s.dataset, s.gateDataset]).filter((d): d is string => !!d))].sort();
  const datasets: Record<string, string> = {};
  const dataHashes: string[] = [];
  for (const [i, id] of datasetIds.entries()) {
    const node = byId.get(id) as NodeOf<'dataset'>;
    const longest = Math.max(...stages.filter((s) => s.dataset === id || s.gateDataset === id)
      .map((s) => maxSeqLen((byId.get(s.train) as NodeOf<'train'>).params.curriculum)));
    const data = await loadDataset(node.params, source.tokenizer, { cacheDir: options.cacheDir, maxSeq: longest, onLog: (l) => log(`${id}: ${l}`) });
    const name = `data/${i}-${id.replace(/[^A-Za-z0-9_-]/g, '_')}.tokens`;
    write(name, tokenFile(data.trainStream, data.validationStream, { seed: node.params.seed, vocabSize: data.vocabSize, eosId: data.eosId }));
    datasets[id] = name;
    dataHashes.push(data.contentHash);
    log(`${id}: ${data.trainTokens} train + ${data.validationTokens} validation tokens -> ${name}`);
  }

  const canonical = canonicalJson(written);
  const pipelineSha256 = sha256(canonical);
  write('pipeline.json', canonical);
  write('pipeline.sha256', `${pipelineSha256}  pipeline.json\n`);
  const plan = {
    format: PLAN_FORMAT,
    studio_version: options.studioVersion ?? 'unknown',
    pipeline_sha256: pipelineSha256,
    pipeline_canonical: canonical.replace(/\n$/, ''),
    pipeline,
    pipeline_seeds: 'resolved (core/seeds.ts): node seeds of 0 follow the pipeline seed',
    model_dir: source.dir,
    model_sha256: await modelContentHash(source, pipeline.seed),
    data_sha256: dataHashes[0] ?? '',
    datasets,
    stages: stages.map((s) => ({ index: s.index, name: s.name, train: s.train, ops: s.ops, gate: s.gate, distill: s.distill, dataset: s.dataset, gateDataset: s.gateDataset })),
    trailing: trailingOps(pipeline),
  };
  write('plan.json', JSON.stringify(plan, null, 2) + '\n');
  for (const f of readdirSync(PYTHON_DIR).filter((f) => f.endsWith('.py')).sort()) {
    copyFileSync(join(PYTHON_DIR, f), join(dir, f));
    files.push(f);
  }
  write('requirements.txt', REQUIREMENTS);
  write('launch.sh', launchScript());
  chmodSync(join(dir, 'launch.sh'), 0o755);
  write('README.md', projectReadme(pipeline, pipelineSha256, stages.length));
  return { dir, files: files.sort(), pipelineSha256 };
}
