// A short two-stage pipeline on the demo model for the PyTorch parity test: static masks
// (global + random, then random + window), distillation with every term, the attention-entropy
// term in stage 2 (over its dense and block-sparse layers), a gate that passes and one that fails
// with 'continue'.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Pipeline, PipelineNode } from '../../../core/schema';

const QUICK_DEMO = fileURLToPath(new URL('../../../templates/quick-demo.json', import.meta.url));

export function parityPipeline(steps = 3): Pipeline {
  const base = JSON.parse(readFileSync(QUICK_DEMO, 'utf8')) as Pipeline;
  const keep = new Set(['model', 'data', 's1-freeze', 's1-replace', 's1-distill', 's1-train', 's1-gate', 's2-replace-a', 's2-unfreeze', 's2-train', 's2-gate']);
  const nodes = base.nodes.filter((n) => keep.has(n.id)).map((n) => structuredClone(n)) as PipelineNode[];
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const set = <T>(id: string, patch: (p: T) => void) => patch(byId.get(id)!.params as T);
  set<any>('s1-replace', (p) => { p.mask = { ...p.mask, selector: 'none', topk_blocks: 0, random_blocks: 2, global_blocks: 1 }; });
  set<any>('s2-replace-a', (p) => { p.mask = { ...p.mask, selector: 'none', topk_blocks: 0, random_blocks: 1, window_blocks: 1, random_seed: 7 }; });
  set<any>('s2-unfreeze', (p) => { p.layers = [4, 8]; p.kinds = ['q', 'k', 'v', 'o']; });
  for (const id of ['s1-train', 's2-train']) {
    set<any>(id, (p) => {
      Object.assign(p, { steps, batch_size: 4, curriculum: [{ from_step: 0, seq_len: 128 }], eval_every: 0, eval_batches: 2, warmup_steps: 1, lr: id === 's1-train' ? 1e-3 : 5e-4 });
      if (id === 's2-train') p.attn_entropy_weight = 0.05;
    });
  }
  // Stage 1: Unfreeze Q/K/V of the replaced layers so something trains without an indexer.
  nodes.push({ id: 's1-unfreeze', kind: 'unfreeze', params: { layers: [4, 6], kinds: ['q', 'k', 'v'], replaced_only: true } });
  set<any>('s1-gate', (p) => { p.checks = [{ metric: 'attn_kl', op: '<', threshold: 10 }, { metric: 'out_cos', op: '>', threshold: 0.5 }]; });
  set<any>('s2-gate', (p) => { p.checks = [{ metric: 'ppl_ratio', op: '>=', threshold: 2 }, { metric: 'density', op: '<=', threshold: 1 }]; });
  const links = base.links.filter((l) => keep.has(l.from) && keep.has(l.to) && !(l.from === 's1-distill' && l.to === 's1-train') && !(l.from === 's2-replace-a'));
  links.push({ from: 's1-distill', to: 's1-unfreeze' }, { from: 's1-unfreeze', to: 's1-train' }, { from: 's2-replace-a', to: 's2-unfreeze' });
  return { ...base, info: { ...base.info, name: 'PyTorch parity', description: 'Two short stages for the export-torch parity test.' }, nodes, links, layout: undefined };
}
