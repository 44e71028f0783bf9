// Session store: which view is open, which run the monitor follows, the last preflight report
// and the one-line notice in the status bar. UI state that is not part of the pipeline.
import { createStore, type StoreApi } from 'zustand/vanilla';
import type { PreflightReport } from '../../../core/api';

export type View = 'editor' | 'monitor' | 'runs';

export interface Notice { text: string; tone: 'info' | 'error'; id: number }

export interface SessionState {
  view: View;
  activeRunId: string | null;
  preflight: PreflightReport | null;
  /** Revision of the pipeline the preflight report belongs to (stale once the graph changes). */
  preflightRevision: number;
  notice: Notice | null;
  showTemplates: boolean;
  /** The person chose to start from an empty canvas: no gallery over it. */
  fromScratch: boolean;
  setView(view: View): void;
  followRun(runId: string): void;
  /** Follows a run without leaving the current view (a live run found after a reload). */
  adoptRun(runId: string): void;
  setPreflight(report: PreflightReport | null, revision: number): void;
  notify(text: string, tone?: Notice['tone']): void;
  setShowTemplates(show: boolean): void;
  startFromScratch(): void;
}

/** View and followed run live in the URL hash (#/monitor/RUN_ID), so a reload keeps them. */
export function parseHash(hash: string): { view: View; activeRunId: string | null } {
  const [, view, runId] = hash.replace(/^#/, '').split('/');
  const known: View[] = ['editor', 'monitor', 'runs'];
  return { view: known.includes(view as View) ? (view as View) : 'editor', activeRunId: runId ? decodeURIComponent(runId) : null };
}

export function formatHash(view: View, activeRunId: string | null): string {
  return `#/${view}${activeRunId ? `/${encodeURIComponent(activeRunId)}` : ''}`;
}

export function createSessionStore(hash = ''): StoreApi<SessionState> {
  let noticeId = 0;
  const initial = parseHash(hash);
  return createStore<SessionState>()((set) => ({
    view: initial.view,
    activeRunId: initial.activeRunId,
    preflight: null,
    preflightRevision: -1,
    notice: null,
    showTemplates: false,
    fromScratch: false,
    setView: (view) => set({ view }),
    followRun: (runId) => set({ activeRunId: runId, view: 'monitor' }),
    adoptRun: (runId) => set({ activeRunId: runId }),
    setPreflight: (report, revision) => set({ preflight: report, preflightRevision: revision }),
    notify: (text, tone = 'info') => set({ notice: { text, tone, id: ++noticeId } }),
    setShowTemplates: (show) => set({ showTemplates: show }),
    startFromScratch: () => set({ fromScratch: true, showTemplates: false }),
  }));
}

export const selectView = (s: SessionState) => s.view;
export const selectActiveRunId = (s: SessionState) => s.activeRunId;
export const selectPreflight = (s: SessionState) => s.preflight;
export const selectNotice = (s: SessionState) => s.notice;
export const selectShowTemplates = (s: SessionState) => s.showTemplates;
