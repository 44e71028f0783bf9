// Run monitor: the followed run's status and controls, stage timeline, charts, log.
import { useEffect, useState } from 'react';
import { selectActiveRunId } from '../stores/session-store';
import { selectMonitorData, selectMonitorRunId, selectMonitorStatus, selectMonitorStatusMessage, selectMonitorVersion } from '../stores/monitor-store';
import { useLive, useMonitor, useSession, useStudio } from '../app/studio-context';
import { followRun } from '../stores/follow-run';
import { runToShow, selectLiveRuns, trackLiveRuns } from '../stores/live-runs';
import { StageTimeline } from './StageTimeline';
import { ChartControls, MonitorCharts } from './MonitorCharts';

/** Keeps the monitor store following the active run while the app is open (any view). */
export function RunFollower() {
  const studio = useStudio();
  const runId = useSession(selectActiveRunId);
  useEffect(() => {
    if (!runId) return;
    return followRun(studio.connection, studio.monitor, runId, { onError: (m) => studio.session.getState().notify(m, 'error') });
  }, [studio, runId]);
  // Live runs of the whole studio; with nothing followed (a reload, a new tab), follow one.
  useEffect(() => trackLiveRuns(studio.connection, studio.live), [studio]);
  useEffect(() => {
    const adopt = () => {
      if (studio.session.getState().activeRunId) return;
      const id = runToShow(studio.live.getState().runs);
      if (id) studio.session.getState().adoptRun(id);
    };
    adopt();
    return studio.live.subscribe(adopt);
  }, [studio]);
  // The status bar follows the run: a live run that ends (or a queued one that starts) says so.
  useEffect(() => studio.monitor.subscribe((state, prev) => {
    if (!state.runId || state.runId !== prev.runId || state.status === prev.status || !prev.status) return;
    const notice = runNotice(state.runId, prev.status, state.status, state.statusMessage);
    if (notice) studio.session.getState().notify(notice.text, notice.tone);
  }), [studio]);
  return null;
}

/** ' (after r1, r2)': the live runs ahead of `id` in the queue. */
function aheadOf(runs: { id: string }[], id: string): string {
  const i = runs.findIndex((r) => r.id === id);
  const ahead = (i < 0 ? runs : runs.slice(0, i)).map((r) => r.id);
  return ahead.length ? ` (after ${ahead.join(', ')})` : '';
}

const LIVE = new Set(['pending', 'queued', 'running', 'paused']);

/** The status-bar line for a followed run's status change (null: nothing worth saying). */
export function runNotice(runId: string, from: string, to: string | null, message: string): { text: string; tone: 'info' | 'error' } | null {
  if (!to || !LIVE.has(from)) return null;
  const why = message ? `: ${message}` : '';
  switch (to) {
    case 'running': return from === 'queued' ? { text: `Run ${runId} left the queue and is running`, tone: 'info' } : null;
    case 'completed': return { text: `Run ${runId} completed`, tone: 'info' };
    case 'cancelled': return { text: `Run ${runId} cancelled${why}`, tone: 'info' };
    case 'failed': return { text: `Run ${runId} failed${why}`, tone: 'error' };
    case 'crashed': return { text: `Run ${runId} crashed${why}`, tone: 'error' };
    default: return null;
  }
}

export function RunMonitor() {
  const { connection, session, graph } = useStudio();
  const runId = useMonitor(selectMonitorRunId);
  const activeRunId = useSession(selectActiveRunId);
  const status = useMonitor(selectMonitorStatus);
  const message = useMonitor(selectMonitorStatusMessage);
  const data = useMonitor(selectMonitorData);
  useMonitor(selectMonitorVersion);
  const pipeline = useMonitor((s) => s.pipeline);
  const [busy, setBusy] = useState(false);
  const liveRuns = useLive(selectLiveRuns);

  const act = async (what: 'pause' | 'resume' | 'cancel') => {
    if (!runId) return;
    setBusy(true);
    try {
      if (what === 'pause') await connection.api.pauseRun(runId);
      if (what === 'resume') await connection.api.resumeRun(runId);
      if (what === 'cancel') await connection.api.cancelRun(runId);
    } catch (e) {
      session.getState().notify(`${what} failed: ${(e as Error).message}`, 'error');
    } finally { setBusy(false); }
  };
  const start = async () => {
    try {
      const { runId: id } = await connection.api.startRun(graph.getState().pipeline);
      session.getState().followRun(id);
    } catch (e) {
      session.getState().notify(`could not start the run: ${(e as Error).message}`, 'error');
    }
  };

  if (!activeRunId) {
    return (
      <div className="monitor empty-monitor">
        <h2>No run is being monitored</h2>
        <p className="muted">Start the pipeline in the editor, or open a run from the Runs view.</p>
        <button className="primary" onClick={() => void start()} disabled={graph.getState().pipeline.nodes.length === 0} aria-label="start">▶ Start the editor's pipeline</button>
      </div>
    );
  }
  const live = status === 'running' || status === 'pending';
  const lastStep = data.lastStep;
  return (
    <div className="monitor">
      <div className="monitor-head">
        <div>
          <h2 className="run-title">{pipeline?.info.name ?? 'Run'} <code>{activeRunId}</code></h2>
          <div className="muted">{status ? <span className={`pill ${status}`} aria-label="run status">{status}</span> : 'loading…'} {message && <span aria-label="status message">{message}</span>} · <span aria-label="last step">{lastStep >= 0 ? `step ${lastStep}` : 'no step yet'}</span> · {data.eventCount} events</div>
        </div>
        <div className="grow" />
        <ChartControls />
        <div className="run-actions">
          {status === 'paused'
            ? <button onClick={() => void act('resume')} disabled={busy} aria-label="resume">Resume</button>
            : <button onClick={() => void act('pause')} disabled={busy || !live} aria-label="pause">Pause</button>}
          <button className="danger" onClick={() => void act('cancel')} disabled={busy || !(live || status === 'paused' || status === 'queued')} aria-label="cancel">Cancel</button>
          <button onClick={() => { if (pipeline) { graph.getState().load(pipeline, { pristine: true }); session.getState().setView('editor'); } }} disabled={!pipeline} aria-label="open pipeline in editor">Open pipeline</button>
        </div>
      </div>
      {status === 'queued' && (
        <p className="queued-note" role="note" aria-label="queued">
          Queued: this run starts when a run slot frees{aheadOf(liveRuns, activeRunId)}. Cancel removes it from the queue.
        </p>
      )}
      <div className="monitor-body">
        <StageTimeline stages={data.stages} />
        <MonitorCharts />
      </div>
      {data.logs.length > 0 && (
        <section className="log" aria-label="log">
          {data.logs.slice(-8).map((l, i) => <div key={i} className={`log-${l.level}`}>{new Date(l.time).toLocaleTimeString()} {l.message}</div>)}
        </section>
      )}
    </div>
  );
}
