// The editor's connection check and the validator judge a link by the same port rule
// (core/nodes.ts linkPort): for every pair of kinds, the editor offers exactly the links the
// validator accepts, and the expectation is derived from NODE_SPECS, not from either of them.
import { describe, expect, it } from 'vitest';
import type { NodeKind, Pipeline, PipelineNode } from '../../../core/schema';
import { NODE_KINDS, PIPELINE_VERSION } from '../../../core/schema';
import { NODE_SPECS, defaultParams } from '../../../core/nodes';
import { validatePipeline } from '../../../core/validate';
import { checkConnection } from './graph-store';

function pair(from: NodeKind, to: NodeKind, linked: boolean): Pipeline {
  const nodes = [
    { id: 'a', kind: from, params: defaultParams(from) },
    { id: 'b', kind: to, params: defaultParams(to) },
  ] as PipelineNode[];
  return {
    version: PIPELINE_VERSION, info: { name: 'pair', author: '', description: '' }, seed: 0, backend: 'auto',
    nodes, links: linked ? [{ from: 'a', to: 'b' }] : [],
  };
}

const pairs = NODE_KINDS.flatMap((from) => NODE_KINDS.map((to) => [from, to] as const));
/** What the specs say: the source's output type is one of the target's inputs. */
const specAllows = (from: NodeKind, to: NodeKind) => {
  const out = NODE_SPECS[from].output;
  return out !== null && NODE_SPECS[to].inputs.includes(out);
};

describe('port rules: editor and validator agree on every pair of kinds', () => {
  it.each(pairs)('%s -> %s', (from, to) => {
    const editorOk = checkConnection(pair(from, to, false), 'a', 'b').ok;
    const linkProblems = validatePipeline(pair(from, to, true)).filter((p) => p.path.startsWith('links[0]'));
    expect(editorOk).toBe(specAllows(from, to));
    expect(linkProblems.length === 0).toBe(editorOk);
  });

  it('is not trivial: the specs allow some pairs and refuse others, of both port types', () => {
    const allowed = pairs.filter(([f, t]) => specAllows(f, t));
    expect(allowed.length).toBeGreaterThan(0);
    expect(allowed.length).toBeLessThan(pairs.length);
    expect(allowed.some(([f]) => NODE_SPECS[f].output === 'data')).toBe(true);
    expect(allowed.some(([f]) => NODE_SPECS[f].output === 'model')).toBe(true);
    expect(pairs.some(([f, t]) => NODE_SPECS[f].output === 'data' && !specAllows(f, t))).toBe(true);
  });

  it('keeps the messages users know', () => {
    const message = (from: NodeKind, to: NodeKind) => validatePipeline(pair(from, to, true)).find((p) => p.path.startsWith('links[0]'))?.message;
    expect(message('dataset', 'freeze')).toBe("data from Dataset 'a' can only go to a Train or Gate node, not Freeze 'b'");
    expect(message('export', 'freeze')).toBe("Export node 'a' has no output");
    expect(message('model', 'dataset')).toBe("Dataset node 'b' takes no input");
    expect(checkConnection(pair('dataset', 'unfreeze', false), 'a', 'b')).toEqual({ ok: false, reason: 'unfreeze takes no data input (only train and gate do)' });
    expect(checkConnection(pair('export', 'train', false), 'a', 'b')).toEqual({ ok: false, reason: 'export has no output' });
  });
});
