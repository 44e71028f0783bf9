// Upper bounds of the schema (LIMITS in core/nodes.ts), the input cap and the problem cap.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Pipeline } from './schema';
import { LIMITS } from './nodes';
import { MAX_PIPELINE_BYTES, parsePipelineText } from './parse';
import { validatePipeline } from './validate';
import { MAX_PROBLEMS } from './validate-fields';

const TEMPLATES = new URL('../templates/', import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const seed = (): any => JSON.parse(readFileSync(new URL('seed-progressive.json', TEMPLATES), 'utf8')) as Pipeline;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const nodeOf = (p: any, kind: string) => p.nodes.findIndex((n: { kind: string }) => n.kind === kind);

describe('schema upper limits', () => {
  const huge: { name: string; kind: string; edit: (params: Record<string, unknown>) => void; field: string; max: number }[] = [
    { name: 'steps 1e15', kind: 'train', edit: (q) => { q.steps = 1e15; }, field: 'steps', max: LIMITS.steps },
    { name: 'batch 1e9', kind: 'train', edit: (q) => { q.batch_size = 1e9; }, field: 'batch_size', max: LIMITS.batch },
    { name: 'seq_len 2^31', kind: 'train', edit: (q) => { (q.curriculum as { seq_len: number }[])[0].seq_len = 2 ** 31; }, field: 'curriculum[0].seq_len', max: LIMITS.seqLen },
    { name: 'eval_batches 1e9', kind: 'train', edit: (q) => { q.eval_batches = 1e9; }, field: 'eval_batches', max: LIMITS.evalBatches },
    { name: 'gate eval_batches 1e9', kind: 'gate', edit: (q) => { q.eval_batches = 1e9; }, field: 'eval_batches', max: LIMITS.evalBatches },
    { name: 'mask_seq_len 2^40', kind: 'export', edit: (q) => { q.mask_seq_len = 2 ** 40; }, field: 'mask_seq_len', max: LIMITS.seqLen },
    { name: 'window_blocks 1e12', kind: 'replace', edit: (q) => { (q.mask as { window_blocks: number }).window_blocks = 1e12; }, field: 'mask.window_blocks', max: LIMITS.blocks },
  ];
  for (const c of huge) {
    it(`refuses ${c.name} with the bound in the message`, () => {
      const p = seed();
      const i = nodeOf(p, c.kind);
      expect(i).toBeGreaterThanOrEqual(0);
      c.edit(p.nodes[i].params);
      const problems = validatePipeline(p);
      const found = problems.find((q) => q.path === `nodes[${i}].params.${c.field}`);
      expect(found?.message, JSON.stringify(problems)).toMatch(new RegExp(`${c.max}`));
    });
  }

  it('the stated limits are the ones in the schema', () => {
    expect(LIMITS).toMatchObject({ steps: 1e7, batch: 4096, seqLen: 2 ** 20, evalBatches: 10_000 });
  });

  it('every template stays within the limits', () => {
    for (const t of ['seed-progressive.json', 'quick-demo.json', 'pretrain-demo.json', 'minicpm41-infllmv2.json']) {
      expect(validatePipeline(JSON.parse(readFileSync(new URL(t, TEMPLATES), 'utf8'))), t).toEqual([]);
    }
  });
});

describe('problem and input caps', () => {
  it(`lists at most ${MAX_PROBLEMS} problems and closes with "... and N more"`, () => {
    const p = seed();
    p.layout = { nodes: Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`ghost-${i}`, { x: 0, y: 0 }])) };
    const problems = validatePipeline(p);
    expect(problems).toHaveLength(MAX_PROBLEMS + 1);
    expect(problems.at(-1)).toEqual({ path: '$', message: `... and ${5000 - MAX_PROBLEMS} more problems` });
    expect(JSON.stringify(problems).length).toBeLessThan(64 * 1024);
  });

  it('refuses pipeline text over MAX_PIPELINE_BYTES without parsing it', () => {
    const text = ' '.repeat(MAX_PIPELINE_BYTES) + '{}';
    const started = Date.now();
    const r = parsePipelineText(text, 'big.json');
    expect(Date.now() - started).toBeLessThan(1000);
    expect('problems' in r && r.problems).toEqual([{ path: '$', message: `big.json is ${text.length} characters; pipelines are at most ${MAX_PIPELINE_BYTES}` }]);
  });
});
