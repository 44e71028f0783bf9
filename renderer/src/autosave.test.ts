import { describe, expect, it } from 'vitest';
import { AUTOSAVE_KEY, readDraft, startAutosave } from './autosave';
import { createGraphStore } from './stores/graph-store';

class MemoryStorage {
  map = new Map<string, string>();
  getItem(k: string) { return this.map.get(k) ?? null; }
  setItem(k: string, v: string) { this.map.set(k, v); }
  removeItem(k: string) { this.map.delete(k); }
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('autosave', () => {
  it('saves after changes settle and restores the same pipeline into a fresh store', async () => {
    const storage = new MemoryStorage();
    const graph = createGraphStore();
    const stop = startAutosave(graph, storage, 20, () => 1234);
    graph.getState().addNode('model', { x: 0, y: 0 });
    graph.getState().addNode('freeze', { x: 250, y: 0 });
    graph.getState().connect('model-1', 'freeze-1');
    graph.getState().setParam('model-1', ['num_layers'], 24);
    expect(storage.getItem(AUTOSAVE_KEY)).toBeNull(); // debounced
    await wait(60);
    const draft = readDraft(storage)!;
    expect(draft.savedAt).toBe(1234);
    const restored = createGraphStore();
    restored.getState().load(draft.pipeline, { resetHistory: true });
    expect(restored.getState().pipeline).toEqual(graph.getState().pipeline);
    stop();
  });

  it('flushes a pending save when stopped (a closing window) and clears on an empty canvas', async () => {
    const storage = new MemoryStorage();
    const graph = createGraphStore();
    const stop = startAutosave(graph, storage, 10_000);
    graph.getState().addNode('model', { x: 0, y: 0 });
    stop();
    expect(readDraft(storage)!.pipeline.nodes).toHaveLength(1);
    const stop2 = startAutosave(graph, storage, 10);
    graph.getState().removeNodes(['model-1']);
    await wait(40);
    expect(readDraft(storage)).toBeNull();
    stop2();
  });

  it('ignores an unreadable draft', () => {
    const storage = new MemoryStorage();
    storage.setItem(AUTOSAVE_KEY, '{"savedAt":1,');
    expect(readDraft(storage)).toBeNull();
    storage.setItem(AUTOSAVE_KEY, '{"savedAt":1,"pipeline":{}}');
    expect(readDraft(storage)).toBeNull();
  });
});
