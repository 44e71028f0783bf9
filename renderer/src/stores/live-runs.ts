// Live runs: every run of the studio that is running, paused or queued, whoever started it
// (this page, another tab, the CLI against the same server). The editor's Run button says it
// will queue while one is live; after a reload the monitor picks the live run up again.
//
// Design choices:
// - Seeded by listRuns, kept current by the status events of every run (onRunEvent carries all
//   runs), and re-listed after a reconnect, since events sent while the link was down are gone.
import { createStore, type StoreApi } from 'zustand/vanilla';
import type { RunSummary } from '../../../core/api';
import type { RunStatus } from '../../../core/events';
import type { StudioConnection } from '../api/connection';

export type LiveStatus = 'pending' | 'queued' | 'running' | 'paused';
export const LIVE_STATUSES: readonly RunStatus[] = ['pending', 'queued', 'running', 'paused'];
export const isLive = (status: RunStatus | null | undefined): status is LiveStatus => !!status && LIVE_STATUSES.includes(status);

export interface LiveRun { id: string; status: LiveStatus; startedAt: number }

export interface LiveRunsState {
  /** Live runs, oldest first. */
  runs: LiveRun[];
  /** True once the first listing has come back. */
  known: boolean;
  setFromList(list: RunSummary[]): void;
  setStatus(id: string, status: RunStatus, time: number): void;
}

export function createLiveRunsStore(): StoreApi<LiveRunsState> {
  return createStore<LiveRunsState>()((set, get) => ({
    runs: [],
    known: false,
    setFromList(list) {
      const runs = list.filter((r) => isLive(r.status)).map((r) => ({ id: r.id, status: r.status as LiveStatus, startedAt: r.startedAt }));
      runs.sort((a, b) => a.startedAt - b.startedAt || a.id.localeCompare(b.id));
      set({ runs, known: true });
    },
    setStatus(id, status, time) {
      const others = get().runs.filter((r) => r.id !== id);
      if (!isLive(status)) { if (others.length !== get().runs.length) set({ runs: others }); return; }
      const prior = get().runs.find((r) => r.id === id);
      const runs = [...others, { id, status, startedAt: prior?.startedAt ?? time }];
      runs.sort((a, b) => a.startedAt - b.startedAt || a.id.localeCompare(b.id));
      set({ runs });
    },
  }));
}

/** Keeps `store` current; returns the function that stops it. */
export function trackLiveRuns(connection: StudioConnection, store: StoreApi<LiveRunsState>): () => void {
  let stopped = false;
  const list = () => connection.api.listRuns().then((runs) => { if (!stopped) store.getState().setFromList(runs); }, () => {});
  const offEvents = connection.api.onRunEvent((event) => {
    if (event.type === 'status' || event.type === 'summary') store.getState().setStatus(event.runId, event.status, event.time);
  });
  const offReconnect = connection.onReconnect(() => { void list(); });
  void list();
  return () => { stopped = true; offEvents(); offReconnect(); };
}

/** The run a monitor with nothing to follow should show: the newest running or paused, else the oldest queued. */
export function runToShow(runs: LiveRun[]): string | null {
  const started = runs.filter((r) => r.status !== 'queued' && r.status !== 'pending');
  if (started.length) return started[started.length - 1].id;
  return runs[0]?.id ?? null;
}

export const selectLiveRuns = (s: LiveRunsState) => s.runs;
