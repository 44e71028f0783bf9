// One context carries the connection and the stores (one per concern). Components read stores
// through `useStudio()` plus a module-level selector; props enter a store only in App.
import { createContext, useContext, useMemo } from 'react';
import type { ReactNode } from 'react';
import { useStore } from 'zustand';
import type { StoreApi } from 'zustand/vanilla';
import type { StudioConnection } from '../api/connection';
import { createGraphStore, type GraphStore } from '../stores/graph-store';
import { createMonitorStore, type MonitorStore } from '../stores/monitor-store';
import { createRunsStore, type RunsState } from '../stores/runs-store';
import { createPrefsStore, type PrefsState } from '../stores/prefs-store';
import { createSessionStore, type SessionState } from '../stores/session-store';
import { createLiveRunsStore, type LiveRunsState } from '../stores/live-runs';
import { createAnalysisStore, type AnalysisState } from '../stores/analysis-store';

export interface Studio {
  connection: StudioConnection;
  graph: GraphStore;
  monitor: MonitorStore;
  runs: StoreApi<RunsState>;
  prefs: StoreApi<PrefsState>;
  session: StoreApi<SessionState>;
  /** Running, paused and queued runs of the whole studio. */
  live: StoreApi<LiveRunsState>;
  /** Attention profiles asked for in the editor. */
  analysis: StoreApi<AnalysisState>;
}

export function createStudio(connection: StudioConnection, storage: Storage | null, hash = ''): Studio {
  return {
    connection,
    graph: createGraphStore(),
    monitor: createMonitorStore(),
    runs: createRunsStore(connection.api),
    prefs: createPrefsStore(storage),
    session: createSessionStore(hash),
    live: createLiveRunsStore(),
    analysis: createAnalysisStore(connection.api),
  };
}

const StudioContext = createContext<Studio | null>(null);

export function StudioProvider({ studio, children }: { studio: Studio; children: ReactNode }) {
  const value = useMemo(() => studio, [studio]);
  return <StudioContext.Provider value={value}>{children}</StudioContext.Provider>;
}

export function useStudio(): Studio {
  const studio = useContext(StudioContext);
  if (!studio) throw new Error('useStudio outside StudioProvider');
  return studio;
}

export const useGraph = <T,>(selector: (s: import('../stores/graph-store').GraphState) => T) => useStore(useStudio().graph, selector);
export const useMonitor = <T,>(selector: (s: import('../stores/monitor-store').MonitorState) => T) => useStore(useStudio().monitor, selector);
export const useRuns = <T,>(selector: (s: RunsState) => T) => useStore(useStudio().runs, selector);
export const usePrefs = <T,>(selector: (s: PrefsState) => T) => useStore(useStudio().prefs, selector);
export const useLive = <T,>(selector: (s: LiveRunsState) => T) => useStore(useStudio().live, selector);
export const useAnalysis = <T,>(selector: (s: AnalysisState) => T) => useStore(useStudio().analysis, selector);
export const useSession = <T,>(selector: (s: SessionState) => T) => useStore(useStudio().session, selector);
