// Autosave: the pipeline under edit goes to localStorage shortly after every change, and comes
// back after a reload or a crash. Only the pipeline is saved (history is not worth the space).
import type { Pipeline } from '../../core/schema';
import type { GraphStore } from './stores/graph-store';

export const AUTOSAVE_KEY = 'sparse-studio.autosave.v1';

export interface SavedDraft { savedAt: number; pipeline: Pipeline }

type KeyValue = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;

/** The saved draft, or null when there is none or it is unreadable. */
export function readDraft(storage: KeyValue): SavedDraft | null {
  const text = storage.getItem(AUTOSAVE_KEY);
  if (!text) return null;
  try {
    const draft = JSON.parse(text) as SavedDraft;
    if (!draft || typeof draft.savedAt !== 'number' || !draft.pipeline || !Array.isArray(draft.pipeline.nodes)) return null;
    return draft;
  } catch {
    return null;
  }
}

/** Saves `delayMs` after the last change; returns a function that stops autosaving (and flushes). */
export function startAutosave(graph: GraphStore, storage: KeyValue, delayMs = 300, now: () => number = Date.now): () => void {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const save = () => {
    timer = null;
    const { pipeline } = graph.getState();
    try {
      if (pipeline.nodes.length === 0) storage.removeItem(AUTOSAVE_KEY);
      else storage.setItem(AUTOSAVE_KEY, JSON.stringify({ savedAt: now(), pipeline } satisfies SavedDraft));
    } catch { /* quota exceeded: the next change tries again */ }
  };
  const unsubscribe = graph.subscribe((state, previous) => {
    if (state.pipeline === previous.pipeline) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(save, delayMs);
  });
  return () => {
    unsubscribe();
    if (timer) { clearTimeout(timer); save(); }
  };
}
