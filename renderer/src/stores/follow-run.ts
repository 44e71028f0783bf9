// Keeps a monitor store in step with one run: history from getRun, then live events.
//
// Design choices:
// - Subscribe first, fetch second: events that arrive while getRun is in flight are buffered
//   and replayed after the history, minus those the history already holds (same time and
//   same content), so no point is lost or drawn twice.
// - After the transport reconnects, the whole run is fetched again: events sent while the
//   link was down are gone from the stream but not from the run store.
// - Live events are folded in batches, at most five per second: a fast run costs a handful
//   of chart redraws per second, not one per step (recharts redraws cost tens of ms each).
import type { RunEvent } from '../../../core/events';
import type { StudioConnection } from '../api/connection';
import type { MonitorStore } from './monitor-store';

export interface FollowOptions {
  /** Schedules a batch flush; defaults to 200 ms later. */
  schedule?: (flush: () => void) => void;
  onError?: (message: string) => void;
}

const defaultSchedule = (flush: () => void) => { setTimeout(flush, 200); };

export function followRun(connection: StudioConnection, store: MonitorStore, runId: string, options: FollowOptions = {}): () => void {
  const schedule = options.schedule ?? defaultSchedule;
  let loading = true;
  let stopped = false;
  let generation = 0;
  let buffered: RunEvent[] = [];
  let batch: RunEvent[] = [];
  let flushQueued = false;

  const flush = () => {
    flushQueued = false;
    if (stopped || !batch.length) return;
    const events = batch;
    batch = [];
    store.getState().ingest(events);
  };

  const offEvents = connection.api.onRunEvent((event) => {
    if (event.runId !== runId || stopped) return;
    if (loading) { buffered.push(event); return; }
    batch.push(event);
    if (!flushQueued) { flushQueued = true; schedule(flush); }
  });

  const reload = async () => {
    const mine = ++generation;
    loading = true;
    buffered = [];
    try {
      const detail = await connection.api.getRun(runId);
      if (stopped || mine !== generation) return;
      const pending = batch.splice(0);
      store.getState().load(detail);
      const fresh = [...pending, ...buffered].filter((e) => !alreadyIn(detail.events, e));
      buffered = [];
      loading = false;
      if (fresh.length) store.getState().ingest(fresh);
    } catch (error) {
      loading = false;
      options.onError?.(`could not load run ${runId}: ${(error as Error).message}`);
    }
  };

  const offReconnect = connection.onReconnect(() => { void reload(); });
  void reload();

  return () => { stopped = true; offEvents(); offReconnect(); };
}

/**
 * True when `history` already holds `event`. Events are emitted in time order, so a live event
 * older than the history's last one is in it; one at the same millisecond is compared by content.
 */
function alreadyIn(history: RunEvent[], event: RunEvent): boolean {
  if (!history.length) return false;
  const last = history[history.length - 1].time;
  if (event.time > last) return false;
  if (event.time < last) return true;
  const text = JSON.stringify(event);
  for (let i = history.length - 1; i >= 0 && history[i].time === last; i--) {
    if (JSON.stringify(history[i]) === text) return true;
  }
  return false;
}
