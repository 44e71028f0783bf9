import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Pipeline } from './schema';
import { validatePipeline } from './validate';

const TEMPLATES = new URL('../templates/', import.meta.url);
const load = (file: string): Pipeline => JSON.parse(readFileSync(new URL(file, TEMPLATES), 'utf8'));
const seed = load('seed-progressive.json');

// Index of each node and link in the seed template, so the table below reads by name.
const N = Object.fromEntries(seed.nodes.map((n, i) => [n.id, i]));
const L = (from: string, to: string) => seed.links.findIndex((l) => l.from === from && l.to === to);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;
const node = (p: Doc, id: string) => p.nodes[N[id]];

interface Case { name: string; edit: (p: Doc) => Doc | void; path: string; message: RegExp; node?: string }

const cases: Case[] = [
  { name: 'not an object', edit: () => 42, path: '$', message: /must be a JSON object, got the number 42/ },
  { name: 'an array', edit: () => [], path: '$', message: /must be a JSON object, got an array/ },
  { name: 'null', edit: () => null, path: '$', message: /got null/ },
  { name: 'missing version', edit: (p) => { delete p.version; }, path: 'version', message: /missing required field/ },
  { name: 'version as text', edit: (p) => { p.version = '1'; }, path: 'version', message: /expected an integer version/ },
  { name: 'version newer than this build', edit: (p) => { p.version = 2; }, path: 'version', message: /version 2 is newer than this build reads \(it reads version 1/ },
  { name: 'unknown top-level field', edit: (p) => { p.extra = true; }, path: 'extra', message: /unknown field 'extra'/ },
  { name: 'missing info', edit: (p) => { delete p.info; }, path: 'info', message: /missing required field/ },
  { name: 'info.name mistyped', edit: (p) => { p.info.name = 3; }, path: 'info.name', message: /expected a string, got the number 3/ },
  { name: 'negative seed', edit: (p) => { p.seed = -1; }, path: 'seed', message: /must be in \[0, 4294967295\]/ },
  { name: 'unknown backend', edit: (p) => { p.backend = 'tpu'; }, path: 'backend', message: /expected one of: auto, cpu, cuda/ },
  { name: 'nodes not an array', edit: (p) => { p.nodes = {}; }, path: 'nodes', message: /expected an array of nodes/ },
  { name: 'unknown node kind', edit: (p) => { node(p, 's1-distill').kind = 'prune'; }, path: `nodes[${N['s1-distill']}].kind`, message: /unknown node kind "prune"/, node: 's1-distill' },
  { name: 'duplicate node id', edit: (p) => { node(p, 's1-distill').id = 's1-replace'; }, path: `nodes[${N['s1-distill']}].id`, message: /duplicate node id 's1-replace' \(also nodes\[3\]\)/ },
  { name: 'missing param', edit: (p) => { delete node(p, 's1-train').params.lr; }, path: `nodes[${N['s1-train']}].params.lr`, message: /missing required field/, node: 's1-train' },
  { name: 'mistyped param', edit: (p) => { node(p, 's1-train').params.lr = '1e-4'; }, path: `nodes[${N['s1-train']}].params.lr`, message: /expected a number, got "1e-4"/ },
  { name: 'unknown param', edit: (p) => { node(p, 's1-train').params.momentum = 0.9; }, path: `nodes[${N['s1-train']}].params.momentum`, message: /unknown field 'momentum'/ },
  { name: 'lr zero', edit: (p) => { node(p, 's2-train').params.lr = 0; }, path: `nodes[${N['s2-train']}].params.lr`, message: /must be > 0 \(got 0\)/, node: 's2-train' },
  { name: 'lr negative', edit: (p) => { node(p, 's2-train').params.lr = -1e-4; }, path: `nodes[${N['s2-train']}].params.lr`, message: /must be > 0/ },
  { name: 'per-kind lr negative', edit: (p) => { node(p, 's2-train').params.lr_attention = -1e-5; }, path: `nodes[${N['s2-train']}].params.lr_attention`, message: /must be >= 0 \(got -0\.00001\)/, node: 's2-train' },
  { name: 'per-kind lr as text', edit: (p) => { node(p, 's2-train').params.lr_selector = 'fast'; }, path: `nodes[${N['s2-train']}].params.lr_selector`, message: /expected a number, got "fast"/ },
  { name: 'lr infinite', edit: (p) => { node(p, 's2-train').params.lr = Infinity; }, path: `nodes[${N['s2-train']}].params.lr`, message: /must be a finite number/ },
  { name: 'block size not a power of two', edit: (p) => { node(p, 's1-replace').params.mask.block_size = 48; }, path: `nodes[${N['s1-replace']}].params.mask.block_size`, message: /power of two in \[16, 256\] \(got 48\)/ },
  { name: 'block size too large', edit: (p) => { node(p, 's1-replace').params.mask.block_size = 512; }, path: `nodes[${N['s1-replace']}].params.mask.block_size`, message: /power of two in \[16, 256\]/ },
  { name: 'block size too small', edit: (p) => { node(p, 's1-replace').params.mask.block_size = 8; }, path: `nodes[${N['s1-replace']}].params.mask.block_size`, message: /power of two in \[16, 256\]/ },
  { name: 'seed threshold out of range', edit: (p) => { node(p, 's1-replace').params.mask.seed_from_teacher = { threshold: 1.5 }; }, path: `nodes[${N['s1-replace']}].params.mask.seed_from_teacher.threshold`, message: /must be a number in \(0, 1\), got 1\.5/ },
  { name: 'seed with an unknown field', edit: (p) => { node(p, 's1-replace').params.mask.seed_from_teacher = { threshold: 0.1, top: 3 }; }, path: `nodes[${N['s1-replace']}].params.mask.seed_from_teacher.top`, message: /unknown field 'top'/ },
  { name: 'seed pairs without blocks', edit: (p) => { node(p, 's1-replace').params.mask.seed_from_teacher = { threshold: 0.1, pairs: [1] }; }, path: `nodes[${N['s1-replace']}].params.mask.seed_from_teacher`, message: /blocks and pairs are recorded together/ },
  { name: 'seed not an object', edit: (p) => { node(p, 's1-replace').params.mask.seed_from_teacher = 0.1; }, path: `nodes[${N['s1-replace']}].params.mask.seed_from_teacher`, message: /expected null or an object \{ threshold \}/ },
  { name: 'indexer warm-up negative', edit: (p) => { node(p, 's1-replace').params.mask.indexer_warmup_steps = -1; }, path: `nodes[${N['s1-replace']}].params.mask.indexer_warmup_steps`, message: /must be in \[0, 10000000\] \(got -1\)/ },
  { name: 'indexer warm-up fractional', edit: (p) => { node(p, 's1-replace').params.mask.indexer_warmup_steps = 2.5; }, path: `nodes[${N['s1-replace']}].params.mask.indexer_warmup_steps`, message: /whole number/ },
  { name: 'indexer warm-up as text', edit: (p) => { node(p, 's1-replace').params.mask.indexer_warmup_steps = '100'; }, path: `nodes[${N['s1-replace']}].params.mask.indexer_warmup_steps`, message: /expected an integer|expected a number/ },
  { name: 'indexer warm-up on a pooled mask', edit: (p) => { Object.assign(node(p, 's1-replace').params.mask, { selector: 'pooled', indexer_warmup_steps: 10 }); }, path: `nodes[${N['s1-replace']}].params.mask.indexer_warmup_steps`, message: /only the indexer selector trains \(selector is "pooled"\)/ },
  { name: 'top-k without a selector', edit: (p) => { node(p, 's1-replace').params.mask.selector = 'none'; }, path: `nodes[${N['s1-replace']}].params.mask.topk_blocks`, message: /need a selector/ },
  { name: 'recall threshold above 1', edit: (p) => { node(p, 's1-gate').params.checks[0] = { metric: 'attn_recall', op: '>', threshold: 1.5 }; }, path: `nodes[${N['s1-gate']}].params.checks[0].threshold`, message: /attn_recall threshold must be in \[0, 1\]/ },
  { name: 'cosine threshold above 1', edit: (p) => { node(p, 's1-gate').params.checks[1].threshold = 2; }, path: `nodes[${N['s1-gate']}].params.checks[1].threshold`, message: /out_cos threshold must be in \[-1, 1\]/ },
  { name: 'negative KL threshold', edit: (p) => { node(p, 's1-gate').params.checks[0].threshold = -0.1; }, path: `nodes[${N['s1-gate']}].params.checks[0].threshold`, message: /attn_kl threshold must be >= 0/ },
  { name: 'NaN threshold', edit: (p) => { node(p, 's3-gate').params.checks[0].threshold = NaN; }, path: `nodes[${N['s3-gate']}].params.checks[0].threshold`, message: /finite/ },
  { name: 'unknown gate metric', edit: (p) => { node(p, 's3-gate').params.checks[0].metric = 'bleu'; }, path: `nodes[${N['s3-gate']}].params.checks[0].metric`, message: /unknown metric "bleu"/ },
  { name: 'gate without checks', edit: (p) => { node(p, 's2-gate').params.checks = []; }, path: `nodes[${N['s2-gate']}].params.checks`, message: /at least one check/ },
  { name: 'negative steps', edit: (p) => { node(p, 's1-train').params.steps = -5; }, path: `nodes[${N['s1-train']}].params.steps`, message: /must be in \[1, 10000000\] \(got -5\)/ },
  { name: 'fractional steps', edit: (p) => { node(p, 's1-train').params.steps = 10.5; }, path: `nodes[${N['s1-train']}].params.steps`, message: /whole number/ },
  { name: 'batch size 0', edit: (p) => { node(p, 's1-train').params.batch_size = 0; }, path: `nodes[${N['s1-train']}].params.batch_size`, message: /must be in \[1, 4096\]/ },
  { name: 'validation fraction 0', edit: (p) => { node(p, 'data').params.validation_fraction = 0; }, path: `nodes[${N.data}].params.validation_fraction`, message: /must be in \(0, 0.5\)/ },
  { name: 'plateau factor 1', edit: (p) => { node(p, 's1-train').params.plateau_factor = 1; }, path: `nodes[${N['s1-train']}].params.plateau_factor`, message: /must be in \(0, 1\)/ },
  { name: 'gate lr factor 0', edit: (p) => { node(p, 's1-gate').params.lr_factor = 0; }, path: `nodes[${N['s1-gate']}].params.lr_factor`, message: /must be in \(0, 1\)/ },
  { name: 'curriculum not from step 0', edit: (p) => { node(p, 's1-train').params.curriculum[0].from_step = 10; }, path: `nodes[${N['s1-train']}].params.curriculum[0].from_step`, message: /must start at step 0/ },
  { name: 'curriculum not sorted', edit: (p) => { node(p, 's1-train').params.curriculum = [{ from_step: 0, seq_len: 512 }, { from_step: 600, seq_len: 1024 }, { from_step: 300, seq_len: 768 }]; }, path: `nodes[${N['s1-train']}].params.curriculum[2].from_step`, message: /must be sorted/ },
  { name: 'curriculum step past the stage', edit: (p) => { node(p, 's1-train').params.curriculum[1].from_step = 5000; }, path: `nodes[${N['s1-train']}].params.curriculum[1].from_step`, message: /past the stage's 60 steps/ },
  { name: 'warm-up longer than the stage', edit: (p) => { node(p, 's1-train').params.warmup_steps = 2000; }, path: `nodes[${N['s1-train']}].params.warmup_steps`, message: /longer than the stage/ },
  { name: 'duplicate parameter kind', edit: (p) => { node(p, 's2-unfreeze').params.kinds = ['q', 'q']; }, path: `nodes[${N['s2-unfreeze']}].params.kinds[1]`, message: /'q' is listed twice/ },
  { name: 'unknown parameter kind', edit: (p) => { node(p, 's2-unfreeze').params.kinds = ['q', 'gate_proj']; }, path: `nodes[${N['s2-unfreeze']}].params.kinds[1]`, message: /unknown parameter kind "gate_proj"/ },
  { name: 'bad content hash', edit: (p) => { node(p, 'model').params.content_hash = 'abc'; }, path: `nodes[${N.model}].params.content_hash`, message: /sha256/ },
  { name: 'unknown built-in model', edit: (p) => { node(p, 'model').params.source = 'builtin:gpt2'; }, path: `nodes[${N.model}].params.source`, message: /unknown built-in 'builtin:gpt2'/ },
  { name: 'init source without a path', edit: (p) => { node(p, 'model').params.source = 'init:'; }, path: `nodes[${N.model}].params.source`, message: /needs the path of a config.json/ },
  { name: 'init source for a dataset', edit: (p) => { node(p, 'data').params.source = 'init:x.json'; }, path: `nodes[${N.data}].params.source`, message: /for models only/ },
  { name: 'cycle', edit: (p) => { p.links.push({ from: 's2-gate', to: 's1-freeze' }); }, path: `links[${seed.links.length}]`, message: /cycle: 's1-freeze' -> .* -> 's2-gate' -> 's1-freeze'/ },
  { name: 'link to a missing node', edit: (p) => { p.links[L('s1-gate', 's2-replace-a')].to = 'ghost'; }, path: `links[${L('s1-gate', 's2-replace-a')}].to`, message: /no node with id 'ghost'/ },
  { name: 'self link', edit: (p) => { p.links.push({ from: 's1-train', to: 's1-train' }); }, path: `links[${seed.links.length}]`, message: /linked to itself/, node: 's1-train' },
  { name: 'duplicate link', edit: (p) => { p.links.push({ from: 'data', to: 's1-train' }); }, path: `links[${seed.links.length}]`, message: new RegExp(`duplicate of links\\[${L('data', 's1-train')}\\]`) },
  { name: 'link out of Export', edit: (p) => { p.links.push({ from: 'export', to: 's1-freeze' }); }, path: `links[${seed.links.length}].from`, message: /has no output/ },
  { name: 'link into the Model', edit: (p) => { p.links.push({ from: 's1-freeze', to: 'model' }); }, path: `links[${seed.links.length}].to`, message: /takes no input/ },
  { name: 'dangling node', edit: (p) => { p.nodes.push({ id: 'lonely', kind: 'freeze', params: { layers: 'all', kinds: ['q'] } }); }, path: `nodes[${seed.nodes.length}]`, message: /'lonely' is not connected/, node: 'lonely' },
  { name: 'no Model node', edit: (p) => { node(p, 'model').kind = 'dataset'; node(p, 'model').params = node(p, 'data').params; }, path: 'nodes', message: /exactly one Model node \(found none\)/ },
  { name: 'two Model nodes', edit: (p) => { p.nodes.push({ ...node(p, 'model'), id: 'model2' }); p.links.push({ from: 'model2', to: 'export' }); }, path: `nodes[${seed.nodes.length}].kind`, message: /'model2' is a second one/ },
  { name: 'data link into a Freeze', edit: (p) => { p.links.push({ from: 'data', to: 's2-unfreeze' }); }, path: `links[${seed.links.length}].to`, message: /can only go to a Train or Gate node/ },
  { name: 'Train without data', edit: (p) => { p.links.splice(L('data', 's2-train'), 1); }, path: `nodes[${N['s2-train']}]`, message: /needs a data link from a Dataset/, node: 's2-train' },
  { name: 'Gate without data', edit: (p) => { p.links.splice(L('data', 's3-gate'), 1); }, path: `nodes[${N['s3-gate']}]`, message: /needs a data link/ },
  { name: 'two model-state inputs', edit: (p) => { p.links.push({ from: 's1-freeze', to: 's1-distill' }); }, path: `nodes[${N['s1-distill']}]`, message: /2 model-state inputs \('s1-unfreeze', 's1-freeze'\)/ },
  { name: 'model state forks', edit: (p) => { p.nodes.push({ id: 'side', kind: 'freeze', params: { layers: 'all', kinds: ['q'] } }); p.links.push({ from: 's1-freeze', to: 'side' }); }, path: `nodes[${N['s1-freeze']}]`, message: /flows on to 2 nodes/ },
  { name: 'gate not after a Train', edit: (p) => { const i = L('s1-train', 's1-gate'); p.links[i] = { from: 's1-distill', to: 's1-gate' }; p.links[L('s1-distill', 's1-train')] = { from: 's1-gate', to: 's1-train' }; p.links[L('s1-gate', 's2-replace-a')] = { from: 's1-train', to: 's2-replace-a' }; }, path: `nodes[${N['s1-gate']}]`, message: /must follow a Train node directly/ },
  { name: 'layer range past num_layers', edit: (p) => { node(p, 's3-replace').params.layers = [11, 13]; }, path: `nodes[${N['s3-replace']}].params.layers`, message: /layer 13 is past the model's 12 layers/ },
  { name: 'layer range past num_layers in a broken graph', edit: (p) => { node(p, 's3-replace').params.layers = [11, 20]; p.links.pop(); }, path: `nodes[${N['s3-replace']}].params.layers`, message: /layer 20 is past the model's 12 layers/ },
  { name: 'embeddings in an Unfreeze', edit: (p) => { node(p, 's2-unfreeze').params.kinds = ['embeddings']; }, path: `nodes[${N['s2-unfreeze']}].params.kinds[0]`, message: /parameter kind 'embeddings' does not apply here/ },
  { name: 'reversed layer range', edit: (p) => { node(p, 's1-replace').params.layers = [6, 4]; }, path: `nodes[${N['s1-replace']}].params.layers`, message: /reversed: first 6 > last 4/ },
  { name: 'layer 0', edit: (p) => { node(p, 's1-replace').params.layers = [0, 4]; }, path: `nodes[${N['s1-replace']}].params.layers[0]`, message: /numbered from 1/ },
  { name: 'layer range as text', edit: (p) => { node(p, 's1-replace').params.layers = '4-6'; }, path: `nodes[${N['s1-replace']}].params.layers`, message: /expected a layer range \[first, last\]/ },
  { name: 'same layer replaced twice', edit: (p) => { node(p, 's2-replace-a').params.layers = [6, 8]; }, path: `nodes[${N['s2-replace-a']}].params.layers`, message: /layer 6 was already replaced by 's1-replace'/ },
  { name: 'unfreeze replaced_only of a dense layer', edit: (p) => { node(p, 's2-unfreeze').params.layers = [3, 10]; }, path: `nodes[${N['s2-unfreeze']}].params.layers`, message: /layer 3 is not replaced before this node/ },
  { name: 'nothing trainable', edit: (p) => { node(p, 's1-unfreeze').params.kinds = ['selector']; }, path: `nodes[${N['s1-train']}]`, message: /nothing is trainable at Train 's1-train'/ },
  { name: 'layout for a missing node', edit: (p) => { p.layout = { nodes: { ghost: { x: 0, y: 0 } } }; }, path: 'layout.nodes.ghost', message: /no node with id 'ghost'/ },
  { name: 'layout zoom 0', edit: (p) => { p.layout = { nodes: {}, viewport: { x: 0, y: 0, zoom: 0 } }; }, path: 'layout.viewport.zoom', message: /must be > 0/ },
  { name: 'distill all weights zero', edit: (p) => { Object.assign(node(p, 's1-distill').params, { task_weight: 0, attn_kl_weight: 0, logit_kl_weight: 0, hidden_mse_weight: 0 }); }, path: `nodes[${N['s1-distill']}].params`, message: /every loss weight is 0/ },
];

describe('validatePipeline rejects', () => {
  it('has at least 30 cases', () => expect(cases.length).toBeGreaterThanOrEqual(30));
  it.each(cases)('$name', ({ edit, path, message, node: nodeId }) => {
    const p = structuredClone(seed);
    const edited = edit(p);
    const problems = validatePipeline(edited === undefined ? p : edited);
    const hit = problems.find((problem) => problem.path === path);
    expect(hit, `no problem at ${path}; got ${JSON.stringify(problems)}`).toBeDefined();
    expect(hit!.message).toMatch(message);
    expect(hit!.message).not.toContain('\n');
    if (nodeId !== undefined) expect(hit!.node).toBe(nodeId);
  });
});

describe('validatePipeline accepts', () => {
  const files = readdirSync(TEMPLATES).filter((f) => f.endsWith('.json'));
  it('finds the shipped templates', () => {
    expect(files).toEqual(expect.arrayContaining(['seed-progressive.json', 'quick-demo.json', 'minicpm41-infllmv2.json', 'qwen3-moe-double-sparsity.json']));
  });
  it.each(files)('templates/%s', (file) => {
    expect(validatePipeline(load(file))).toEqual([]);
  });

  it('a pipeline with a layout and a viewport', () => {
    const p = structuredClone(seed);
    p.layout = { nodes: { model: { x: 0, y: 0 }, 's1-train': { x: -10.5, y: 3 } }, viewport: { x: 1, y: 2, zoom: 0.5 } };
    expect(validatePipeline(p)).toEqual([]);
  });

  it('a mask seeded from the teacher, asked for or recorded by a run, or null', () => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const mask = (p: Pipeline) => (p.nodes[N['s1-replace']] as any).params.mask;
    for (const seedValue of [{ threshold: 0.1 }, { threshold: 0.1, blocks: 4, pairs: [4, 9] }, null]) {
      const p = structuredClone(seed);
      mask(p).seed_from_teacher = seedValue;
      expect(validatePipeline(p)).toEqual([]);
    }
  });

  it("an indexer's warm-up length (0 = selected-set KL from the first step), or null", () => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const mask = (p: Pipeline) => (p.nodes[N['s1-replace']] as any).params.mask;
    for (const steps of [0, 200, 10_000_000, null]) {
      const p = structuredClone(seed);
      mask(p).selector = 'indexer';
      mask(p).indexer_warmup_steps = steps;
      expect(validatePipeline(p)).toEqual([]);
    }
    const pooled = structuredClone(seed);
    Object.assign(mask(pooled), { selector: 'pooled', indexer_warmup_steps: null });  // null is allowed on any selector
    expect(validatePipeline(pooled).filter((q) => q.path.includes('indexer_warmup_steps'))).toEqual([]);
  });

  it('per-kind learning rates on a Train node, or none (files written before them)', () => {
    const p = structuredClone(seed);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    Object.assign((p.nodes[N['s2-train']] as any).params, { lr_selector: 1e-4, lr_attention: 0 });
    expect(validatePipeline(p)).toEqual([]);
    expect(validatePipeline(seed)).toEqual([]);
  });

  it('an Export hanging off a Gate mid-chain', () => {
    const p = structuredClone(seed);
    p.nodes.push({ id: 'export-1', kind: 'export', params: { path: 'after-stage-1', flex_masks: false, mask_seq_len: 1024 } });
    p.links.push({ from: 's1-gate', to: 'export-1' });
    expect(validatePipeline(p)).toEqual([]);
  });

  it('never throws on hostile input', () => {
    const inputs: unknown[] = [undefined, '', 'x', true, { version: 1, nodes: [null, 1, 'a', [], { id: {} }], links: [null, [1, 2], { from: 1 }] },
      { version: 1, nodes: [{ id: 'm', kind: 'model', params: null }], links: 'x', layout: [] }, { version: 1, info: [], seed: 1.5, backend: null, nodes: [], links: [] },
      { version: 1, nodes: [{ id: '__proto__', kind: 'model', params: { source: 'builtin:demo', num_layers: 2, content_hash: '' } }], links: [{ from: 'constructor', to: 'toString' }] }];
    for (const input of inputs) {
      const problems = validatePipeline(input);
      expect(problems.length).toBeGreaterThan(0);
      for (const p of problems) expect(typeof p.path).toBe('string');
    }
  });
});

describe('validatePipeline reports a mistake once, not its consequences', () => {
  it('a mistyped kind: one problem, not "no model-state input" on its neighbours', () => {
    const p = structuredClone(seed) as Doc;
    node(p, 's2-unfreeze').kind = 'unfrezee';
    expect(validatePipeline(p)).toEqual([expect.objectContaining({ path: `nodes[${N['s2-unfreeze']}].kind`, node: 's2-unfreeze' })]);
  });

  it('a bad parameter: one problem', () => {
    const p = structuredClone(seed) as Doc;
    node(p, 's1-replace').params.mask.random_blocks = -1;
    expect(validatePipeline(p).map((x) => x.path)).toEqual([`nodes[${N['s1-replace']}].params.mask.random_blocks`]);
  });

  it('a duplicate id: one problem', () => {
    const p = structuredClone(seed) as Doc;
    p.nodes.push({ ...node(p, 'export') });
    expect(validatePipeline(p).map((x) => x.path)).toEqual([`nodes[${seed.nodes.length}].id`]);
  });
});
