// Analysis store: the attention profiles the person asked for ("Analyze attention" on a Model or
// Replace node), keyed by request (core/attention-profile.ts profileRequestKey). The host caches
// them too; this copy lets every node whose request matches show the answer without asking again.
import { createStore, type StoreApi } from 'zustand/vanilla';
import type { StudioApi } from '../../../core/api';
import { profileRequestKey, type AttentionProfileRequest, type ProfileReport } from '../../../core/attention-profile';

export type AnalysisEntry =
  | { status: 'running' }
  | { status: 'done'; report: ProfileReport }
  | { status: 'error'; error: string };

export interface AnalysisState {
  entries: Record<string, AnalysisEntry>;
  analyze(request: AttentionProfileRequest): Promise<void>;
}

export function createAnalysisStore(api: Pick<StudioApi, 'analyzeAttention'>): StoreApi<AnalysisState> {
  return createStore<AnalysisState>()((set, get) => ({
    entries: {},
    async analyze(request) {
      const key = profileRequestKey(request);
      if (get().entries[key]?.status === 'running') return;
      const put = (entry: AnalysisEntry) => set({ entries: { ...get().entries, [key]: entry } });
      put({ status: 'running' });
      try {
        put({ status: 'done', report: await api.analyzeAttention(request) });
      } catch (error) {
        put({ status: 'error', error: (error as Error).message.split('\n')[0] });
      }
    },
  }));
}
