// export-torch does not replay mixture-of-experts models: it refuses them with one line instead
// of writing a project whose dense model.py would train something else.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Pipeline } from '../../core/schema';
import { exportProblem, exportTorch } from './export';

const out = mkdtempSync(join(tmpdir(), 'torch-moe-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));
const template = (name: string) => JSON.parse(readFileSync(new URL(`../../templates/${name}`, import.meta.url), 'utf8')) as Pipeline;

describe('export-torch on mixture-of-experts pipelines', () => {
  it('refuses a load-balancing term, naming the Train node and field', () => {
    expect(exportProblem(template('qwen3-moe-double-sparsity.json'))).toBe(
      's1-train.load_balance: mixture-of-experts models (qwen3_moe) are not in the PyTorch export yet; run the pipeline in the studio');
  });
  it('refuses a MoE model even without load balancing, before writing anything', async () => {
    const p = template('qwen3-moe-double-sparsity.json');
    for (const n of p.nodes) if (n.kind === 'train') n.params.load_balance = 'none';
    for (const n of p.nodes) if (n.kind === 'replace') n.params.mask.selector = n.params.mask.selector === 'indexer' ? 'pooled' : n.params.mask.selector;
    expect(exportProblem(p)).toBeNull();
    await expect(exportTorch(p, join(out, 'project'))).rejects.toThrow(
      /^model\.source: mixture-of-experts models \(qwen3_moe\) are not in the PyTorch export yet; run the pipeline in the studio$/);
  });
});
