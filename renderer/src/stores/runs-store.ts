// Runs store: the run history (listRuns), the runs picked for comparison and their details.
import { createStore, type StoreApi } from 'zustand/vanilla';
import type { RunDetail, RunSummary, StudioApi } from '../../../core/api';

export interface RunsState {
  runs: RunSummary[];
  loading: boolean;
  error: string;
  /** Run ids ticked for comparison, in the order they were ticked. */
  compare: string[];
  details: Record<string, RunDetail>;
  refresh(): Promise<void>;
  toggleCompare(id: string): void;
  fetchDetail(id: string): Promise<RunDetail>;
}

export function createRunsStore(api: Pick<StudioApi, 'listRuns' | 'getRun'>): StoreApi<RunsState> {
  return createStore<RunsState>()((set, get) => ({
    runs: [],
    loading: false,
    error: '',
    compare: [],
    details: {},
    async refresh() {
      set({ loading: true });
      try {
        const runs = await api.listRuns();
        runs.sort((a, b) => b.startedAt - a.startedAt);
        set({ runs, loading: false, error: '' });
      } catch (error) {
        set({ loading: false, error: `could not list runs: ${(error as Error).message}` });
      }
    },
    toggleCompare(id) {
      const { compare } = get();
      set({ compare: compare.includes(id) ? compare.filter((c) => c !== id) : [...compare, id] });
    },
    async fetchDetail(id) {
      const cached = get().details[id];
      if (cached && cached.status !== 'running' && cached.status !== 'pending' && cached.status !== 'queued' && cached.status !== 'paused') return cached;
      const detail = await api.getRun(id);
      set({ details: { ...get().details, [id]: detail } });
      return detail;
    },
  }));
}

export const selectRuns = (s: RunsState) => s.runs;
export const selectCompare = (s: RunsState) => s.compare;
export const selectRunsError = (s: RunsState) => s.error;
export const selectRunsLoading = (s: RunsState) => s.loading;
