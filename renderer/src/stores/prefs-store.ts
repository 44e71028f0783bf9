// Preferences: how charts and previews are drawn. Persisted to localStorage so a reload keeps
// the reader's smoothing, scale and axis.
import { createStore, type StoreApi } from 'zustand/vanilla';

export type XAxisKind = 'step' | 'time';

export interface Prefs {
  /** EMA weight 0..0.99 (0 = raw). */
  smoothing: number;
  logScale: boolean;
  xAxis: XAxisKind;
  /** Sequence length of the Replace inspector's mask heatmap. */
  maskSeqLen: number;
}

export interface PrefsState extends Prefs {
  set(patch: Partial<Prefs>): void;
}

export const DEFAULT_PREFS: Prefs = { smoothing: 0.6, logScale: false, xAxis: 'step', maskSeqLen: 2048 };
const KEY = 'sparse-studio.prefs.v1';

export function createPrefsStore(storage: Pick<Storage, 'getItem' | 'setItem'> | null = null): StoreApi<PrefsState> {
  let saved: Partial<Prefs> = {};
  try { saved = JSON.parse(storage?.getItem(KEY) ?? '{}') as Partial<Prefs>; } catch { saved = {}; }
  const initial = { ...DEFAULT_PREFS, ...pickKnown(saved) };
  return createStore<PrefsState>()((set, get) => ({
    ...initial,
    set(patch) {
      set(patch);
      const { smoothing, logScale, xAxis, maskSeqLen } = get();
      try { storage?.setItem(KEY, JSON.stringify({ smoothing, logScale, xAxis, maskSeqLen })); } catch { /* storage full or blocked: keep in memory */ }
    },
  }));
}

function pickKnown(saved: Partial<Prefs>): Partial<Prefs> {
  const out: Partial<Prefs> = {};
  if (typeof saved.smoothing === 'number' && saved.smoothing >= 0 && saved.smoothing < 1) out.smoothing = saved.smoothing;
  if (typeof saved.logScale === 'boolean') out.logScale = saved.logScale;
  if (saved.xAxis === 'step' || saved.xAxis === 'time') out.xAxis = saved.xAxis;
  if (typeof saved.maskSeqLen === 'number' && saved.maskSeqLen >= 16) out.maskSeqLen = saved.maskSeqLen;
  return out;
}

export const selectSmoothing = (s: PrefsState) => s.smoothing;
export const selectLogScale = (s: PrefsState) => s.logScale;
export const selectXAxis = (s: PrefsState) => s.xAxis;
export const selectMaskSeqLen = (s: PrefsState) => s.maskSeqLen;
export const selectSetPrefs = (s: PrefsState) => s.set;
