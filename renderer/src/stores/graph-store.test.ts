import { describe, expect, it } from 'vitest';
import { checkConnection, refusalAt, createGraphStore, layeredLayout, setIn } from './graph-store';

function demo() {
  const store = createGraphStore();
  const g = () => store.getState();
  const model = g().addNode('model', { x: 0, y: 0 });
  const data = g().addNode('dataset', { x: 0, y: 200 });
  const freeze = g().addNode('freeze', { x: 200, y: 0 });
  const replace = g().addNode('replace', { x: 400, y: 0 });
  const train = g().addNode('train', { x: 600, y: 0 });
  expect(g().connect(model, freeze).ok).toBe(true);
  expect(g().connect(freeze, replace).ok).toBe(true);
  expect(g().connect(replace, train).ok).toBe(true);
  expect(g().connect(data, train).ok).toBe(true);
  return { store, g, ids: { model, data, freeze, replace, train } };
}

describe('graph store', () => {
  it('adds nodes with the registry defaults and unique ids', () => {
    const { g, ids } = demo();
    expect(ids).toEqual({ model: 'model-1', data: 'dataset-1', freeze: 'freeze-1', replace: 'replace-1', train: 'train-1' });
    const train = g().pipeline.nodes.find((n) => n.id === 'train-1')!;
    expect(train.kind === 'train' && train.params.lr).toBe(1e-4);
    expect(g().pipeline.layout!.nodes['train-1']).toEqual({ x: 600, y: 0 });
    expect(g().pipeline.links).toHaveLength(4);
  });

  it('refuses wrongly typed, duplicate and cyclic links with a reason', () => {
    const { g } = demo();
    const p = g().pipeline;
    expect(checkConnection(p, 'dataset-1', 'freeze-1')).toEqual({ ok: false, reason: 'freeze takes no data input (only train and gate do)' });
    expect(checkConnection(p, 'model-1', 'dataset-1')).toEqual({ ok: false, reason: 'dataset takes no model-state input' });
    expect(checkConnection(p, 'model-1', 'freeze-1')).toEqual({ ok: false, reason: 'these nodes are already linked' });
    expect(checkConnection(p, 'train-1', 'freeze-1')).toEqual({ ok: false, reason: 'freeze-1 already has a model-state input (delete that link first)' });
    g().disconnect('model-1', 'freeze-1');
    expect(checkConnection(g().pipeline, 'train-1', 'freeze-1')).toEqual({ ok: false, reason: 'this link would make a cycle (freeze-1 already leads to train-1)' });
    expect(g().connect('train-1', 'train-1').ok).toBe(false);
  });

  it('says at the cursor why a dragged link may not end where it is', () => {
    const { g } = demo();
    g().disconnect('model-1', 'freeze-1');
    const p = g().pipeline;
    // From an output, over a node or one of its handles.
    expect(refusalAt(p, { nodeId: 'model-1', handleType: 'source', port: 'model' }, 'train-1', 'data'))
      .toBe('wrong port kind: model-1 sends a model state, this input of train-1 takes data');
    expect(refusalAt(p, { nodeId: 'model-1', handleType: 'source', port: 'model' }, 'replace-1', null))
      .toBe('replace-1 already has a model-state input (delete that link first)');
    expect(refusalAt(p, { nodeId: 'train-1', handleType: 'source', port: 'model' }, 'freeze-1', 'model'))
      .toBe('this link would make a cycle (freeze-1 already leads to train-1)');
    expect(refusalAt(p, { nodeId: 'model-1', handleType: 'source', port: 'model' }, 'freeze-1', 'model')).toBeNull();
    // From an input, back to an output.
    expect(refusalAt(p, { nodeId: 'freeze-1', handleType: 'target', port: 'model' }, 'dataset-1', null))
      .toBe('wrong port kind: dataset-1 sends data, this input of freeze-1 takes a model state');
    expect(refusalAt(p, { nodeId: 'freeze-1', handleType: 'target', port: 'model' }, 'model-1', null)).toBeNull();
  });

  it('undoes and redoes every edit, and a new edit clears the redo stack', () => {
    const { g } = demo();
    const before = g().pipeline;
    g().setParam('train-1', ['lr'], 5e-5);
    g().setParam('replace-1', ['mask', 'random_blocks'], 6);
    const after = g().pipeline;
    g().undo();
    g().undo();
    expect(g().pipeline).toBe(before);
    g().redo();
    expect(g().pipeline.nodes.find((n) => n.id === 'train-1')!.params).toMatchObject({ lr: 5e-5 });
    g().redo();
    expect(g().pipeline).toBe(after);
    g().undo();
    g().setLabel('train-1', 'foundation');
    expect(g().future).toHaveLength(0);
    // 9 edits so far (5 adds, 4 links) + 2 params - 1 undo + 1 label
    expect(g().past).toHaveLength(11);
  });

  it('makes a whole drag one undo step', () => {
    const { g } = demo();
    g().beginGesture();
    g().moveNodes({ 'train-1': { x: 610, y: 5 } });
    g().moveNodes({ 'train-1': { x: 650, y: 40 } });
    g().endGesture();
    expect(g().pipeline.layout!.nodes['train-1']).toEqual({ x: 650, y: 40 });
    g().undo();
    expect(g().pipeline.layout!.nodes['train-1']).toEqual({ x: 600, y: 0 });
  });

  it('deletes nodes with their links and positions', () => {
    const { g } = demo();
    g().removeNodes(['replace-1']);
    expect(g().pipeline.nodes.map((n) => n.id)).not.toContain('replace-1');
    expect(g().pipeline.links).toEqual([{ from: 'model-1', to: 'freeze-1' }, { from: 'dataset-1', to: 'train-1' }]);
    expect(g().pipeline.layout!.nodes['replace-1']).toBeUndefined();
  });

  it('copies and pastes nodes with fresh ids, their inner links and offset positions', () => {
    const { g } = demo();
    g().setParam('replace-1', ['layers'], [7, 10]);
    g().select(['replace-1', 'train-1']);
    g().copy();
    g().paste();
    const p = g().pipeline;
    expect(g().selection).toEqual(['replace-2', 'train-2']);
    expect(p.nodes.find((n) => n.id === 'replace-2')!.params).toMatchObject({ layers: [7, 10] });
    expect(p.links).toContainEqual({ from: 'replace-2', to: 'train-2' });
    expect(p.links.filter((l) => l.to === 'train-2')).toHaveLength(1); // the dataset link was outside the copy
    expect(p.layout!.nodes['train-2']).toEqual({ x: 640, y: 40 });
    // the pasted copy is independent of the original
    g().setParam('replace-2', ['layers'], [11, 12]);
    expect(g().pipeline.nodes.find((n) => n.id === 'replace-1')!.params).toMatchObject({ layers: [7, 10] });
  });

  it('lays out left to right by execution order with datasets under their consumer', () => {
    const { g } = demo();
    const pos = layeredLayout(g().pipeline);
    expect(pos['model-1'].x).toBeLessThan(pos['freeze-1'].x);
    expect(pos['freeze-1'].x).toBeLessThan(pos['replace-1'].x);
    expect(pos['replace-1'].x).toBeLessThan(pos['train-1'].x);
    expect(pos['dataset-1'].y).toBeGreaterThan(pos['train-1'].y);
    g().autoLayout();
    expect(g().pipeline.layout!.nodes).toEqual(pos);
  });

  it('setIn copies along the path only', () => {
    const obj = { a: { b: [1, 2] }, c: { d: 1 } };
    const out = setIn(obj, ['a', 'b', 1], 5);
    expect(out).toEqual({ a: { b: [1, 5] }, c: { d: 1 } });
    expect(obj.a.b[1]).toBe(2);
    expect(out.c).toBe(obj.c);
  });
  it('setIn removes an object key set to undefined (an optional field left empty)', () => {
    const out = setIn({ a: { lr: 1, lr_attention: 2 } }, ['a', 'lr_attention'], undefined);
    expect(out).toEqual({ a: { lr: 1 } });
    expect('lr_attention' in out.a).toBe(false);
  });
});

describe('graph store selection edits', () => {
  it('deletes selected nodes and links as one undo step', () => {
    const { g } = demo();
    g().select(['freeze-1']);
    g().selectLinks(['dataset-1->train-1']);
    g().deleteSelection();
    expect(g().pipeline.links).toEqual([{ from: 'replace-1', to: 'train-1' }]);
    g().undo();
    expect(g().pipeline.links).toHaveLength(4);
  });

  it('renames a node with its links and position, and refuses taken or bad ids', () => {
    const { g } = demo();
    expect(g().renameNode('train-1', 'model-1')).toBe("id: 'model-1' is already used by another node");
    expect(g().renameNode('train-1', 'bad id')).toMatch(/^id: /);
    expect(g().renameNode('train-1', 's1-train')).toBeNull();
    expect(g().pipeline.links).toContainEqual({ from: 'dataset-1', to: 's1-train' });
    expect(g().pipeline.layout!.nodes['s1-train']).toEqual({ x: 600, y: 0 });
  });
});
