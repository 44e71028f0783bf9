// The built-in mixture-of-experts demo model (models/demo-moe), upcycled from the dense demo:
//
//   npx tsx scripts/demo-moe.ts upcycle
//     writes models/demo-moe/ as a qwen3_moe checkpoint (fp32) made from models/demo: every
//     second layer's MLP copied into 8 experts with a little noise, a fresh router, top-2 with
//     renormalised weights; the other layers keep the dense MLP; q_norm/k_norm start at ones.
//   node bin/sparse-studio.mjs run templates/pretrain-demo-moe.json
//     trains it briefly (every parameter, Switch load balancing) and exports to
//     <run dir>/models/demo-moe.
//   npx tsx scripts/demo-moe.ts pack <run dir>/models/demo-moe
//     stores that export as models/demo-moe/model.safetensors in bfloat16 (the fp32 file would be
//     about 36 MB; the shipped model must stay under 25 MB).
//
// Why these choices: with identical experts and renormalised top-2 weights the MoE MLP computes
// the dense MLP exactly, so the upcycled model starts from the demo's knowledge; the noise
// (relative 1e-2 of each weight matrix's RMS) breaks the experts' symmetry so training can make
// them differ. MoE in every second layer (decoder_sparse_step 2) keeps the file small and
// exercises the mixed dense/MoE layout real configs allow. The qk-norm Qwen3 adds is not the
// identity even at weight 1 (it rescales each head's q and k to unit RMS), which is why the
// model is trained briefly rather than shipped as upcycled.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ModelConfig } from '../native/engine-api';
import { configToJson, validateModelConfig } from '../native/checkpoint/config';
import { isMoeLayer } from '../native/checkpoint/families';
import { loadCheckpoint, saveCheckpoint } from '../native/checkpoint/load';
import { writeSafetensors } from '../native/checkpoint/safetensors';
import { expectedTensors } from '../native/checkpoint/config';
import { mixSeed, seededRandom } from '../host/data/rng';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const DENSE_DIR = path.join(root, 'models/demo');
export const MOE_DIR = path.join(root, 'models/demo-moe');
const SHARED_FILES = ['tokenizer.json', 'tokenizer_config.json', 'validation.txt'];

export const MOE_FIELDS = {
  num_experts: 8, num_experts_per_tok: 2, moe_intermediate_size: 384, norm_topk_prob: true,
  decoder_sparse_step: 2, mlp_only_layers: [] as number[], router_aux_loss_coef: 0.001,
};
const SEED = 1234;
/** Expert noise: this share of each dense matrix's RMS, per element. */
const EXPERT_NOISE = 1e-2;
/** Router init: normal with this std (transformers' initializer_range). */
const ROUTER_STD = 0.02;

/** The qwen3_moe config of the upcycled model: the dense demo's shape plus MOE_FIELDS. */
export function moeConfig(dense: ModelConfig): ModelConfig {
  const raw = { ...configToJson(dense), model_type: 'qwen3_moe', architectures: ['Qwen3MoeForCausalLM'], tie_word_embeddings: dense.tie_word_embeddings, ...MOE_FIELDS };
  return validateModelConfig(raw, 'models/demo-moe/config.json');
}

function gaussian(random: () => number): number {
  // Box-Muller; 1 - u keeps the log finite.
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

function rms(x: Float32Array): number {
  let s = 0;
  for (const v of x) s += v * v;
  return Math.sqrt(s / x.length);
}

/** The upcycled tensors: dense ones copied, experts = dense MLP + noise, fresh routers, unit qk-norms. */
export function upcycle(dense: { config: ModelConfig; tensors: Map<string, Float32Array> }): { config: ModelConfig; tensors: Map<string, Float32Array> } {
  const config = moeConfig(dense.config);
  const out = new Map<string, Float32Array>();
  for (const { name, shape } of expectedTensors(config)) {
    const size = shape.reduce((a, b) => a * b, 1);
    const m = /^model\.layers\.(\d+)\.(.*)$/.exec(name);
    const layer = m ? Number(m[1]) : -1;
    const local = m ? m[2] : name;
    const random = seededRandom(mixSeed(SEED, layer, ...[...local].map((c) => c.charCodeAt(0))));
    let data: Float32Array;
    if (local === 'self_attn.q_norm.weight' || local === 'self_attn.k_norm.weight') {
      data = new Float32Array(size).fill(1);
    } else if (local === 'mlp.gate.weight') {
      data = Float32Array.from({ length: size }, () => ROUTER_STD * gaussian(random));
    } else if (local.startsWith('mlp.experts.')) {
      const proj = local.split('.').slice(-2)[0]; // gate_proj, up_proj or down_proj
      const source = dense.tensors.get(`model.layers.${layer}.mlp.${proj}.weight`)!;
      const scale = EXPERT_NOISE * rms(source);
      data = Float32Array.from(source, (v) => v + scale * gaussian(random));
    } else {
      const source = dense.tensors.get(name);
      if (!source || source.length !== size) throw new Error(`models/demo: tensor ${name} is missing or has the wrong size`);
      data = Float32Array.from(source);
    }
    out.set(name, data);
  }
  if (!Array.from({ length: config.num_hidden_layers }, (_, l) => isMoeLayer(config, l)).some(Boolean)) throw new Error('upcycle: no MoE layer');
  return { config, tensors: out };
}

function writeShared(dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const f of SHARED_FILES) copyFileSync(path.join(DENSE_DIR, f), path.join(dir, f));
}

function upcycleCommand(): number {
  const { config, tensors } = upcycle(loadCheckpoint(DENSE_DIR));
  saveCheckpoint(MOE_DIR, config, tensors);
  writeShared(MOE_DIR);
  console.log(`wrote ${path.relative(root, MOE_DIR)}: upcycled qwen3_moe (fp32); now run templates/pretrain-demo-moe.json and pack its export`);
  return 0;
}

/** Stores a trained export as the shipped bfloat16 checkpoint in models/demo-moe. */
function packCommand(exported: string | undefined): number {
  if (!exported) { console.error('usage: npx tsx scripts/demo-moe.ts pack <export dir>'); return 2; }
  const { config, tensors } = loadCheckpoint(path.resolve(exported));
  if (config.model_type !== 'qwen3_moe') { console.error(`${exported}: model_type is ${config.model_type}, expected qwen3_moe`); return 1; }
  const list = expectedTensors(config).map(({ name, shape }) => ({ name, shape, data: tensors.get(name)! }));
  writeShared(MOE_DIR);
  // The export describes its (all dense) attention in sparse_attention; a base model has none.
  const { sparse_attention: _attention, ...json } = configToJson(config);
  writeFileSync(path.join(MOE_DIR, 'config.json'), JSON.stringify({ ...json, torch_dtype: 'bfloat16' }, null, 2) + '\n');
  writeSafetensors(path.join(MOE_DIR, 'model.safetensors'), list, { format: 'pt' }, 'BF16');
  console.log(`wrote ${path.relative(root, MOE_DIR)}/model.safetensors (bfloat16) from ${exported}`);
  return 0;
}

async function main(args: string[]): Promise<number> {
  if (args[0] === 'upcycle') return upcycleCommand();
  if (args[0] === 'pack') return packCommand(args[1]);
  console.error('usage: npx tsx scripts/demo-moe.ts upcycle | pack <export dir>');
  return 2;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e) => { console.error((e as Error).message); process.exitCode = 1; });
}

