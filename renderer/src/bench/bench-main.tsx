// UI bench page: the run monitor's charts fed by a synthetic 100k-step run (8+ series of 100k
// points each). Measures how long a redraw takes after new points arrive; publishes the result
// on window.__bench for scripts/bench-ui.mjs.
import { createRoot } from 'react-dom/client';
import { flushSync } from 'react-dom';
import '@xyflow/react/dist/style.css';
import '../styles.css';
import type { StudioApi } from '../../../core/api';
import { STUDIO_METHODS } from '../../../core/api';
import type { StudioConnection } from '../api/connection';
import { createStudio, StudioProvider } from '../app/studio-context';
import { ChartControls, MonitorCharts } from '../monitor/MonitorCharts';
import { StageTimeline } from '../monitor/StageTimeline';
import { syntheticRun } from './fixture';

/** The bench has no service: every call says so. */
function offline(): StudioConnection {
  const api = {} as Record<string, unknown>;
  for (const m of STUDIO_METHODS) api[m] = () => Promise.reject(new Error(`${m}: the UI bench page has no service`));
  api.onRunEvent = () => () => {};
  return { api: api as unknown as StudioApi, kind: 'websocket', getState: () => 'closed', onStateChange: () => () => {}, onReconnect: () => () => {}, close: () => {} };
}

const params = new URLSearchParams(location.search);
const steps = Number(params.get('steps') ?? 100_000);
const studio = createStudio(offline(), null);
const events = syntheticRun(steps + 1000);
const firstBatch = events.filter((e) => e.type !== 'step' || e.metrics.step < steps);
const rest = events.filter((e) => e.type === 'step' && e.metrics.step >= steps);

const frame = () => new Promise<void>((resolve) => requestAnimationFrame(() => resolve()));

/** Resolves once the (deferred) charts have rendered `version`, then painted. */
const drawn = (version: number) => new Promise<void>((resolve) => {
  const poll = () => {
    if (document.querySelector('.charts')?.getAttribute('data-version') === String(version)) requestAnimationFrame(() => resolve());
    else setTimeout(poll, 1);
  };
  poll();
});

function Bench() {
  return (
    <div className="monitor" style={{ height: '100vh' }}>
      <div className="monitor-head"><h2 className="run-title">UI bench · {steps.toLocaleString()} steps</h2><div className="grow" /><ChartControls /></div>
      <div className="monitor-body"><StageTimeline stages={studio.monitor.getState().data.stages} /><MonitorCharts /></div>
    </div>
  );
}

async function run() {
  const loadStart = performance.now();
  studio.monitor.getState().load({ id: 'bench', name: 'bench', status: 'running', startedAt: 0, stages: 3, final: {}, pipeline: null as never, events: firstBatch, runDir: '' });
  const ingestMs = performance.now() - loadStart;
  const root = createRoot(document.getElementById('root')!);
  const renderStart = performance.now();
  flushSync(() => root.render(<StudioProvider studio={studio}><Bench /></StudioProvider>));
  await drawn(studio.monitor.getState().version);
  await new Promise((r) => setTimeout(r, 50)); // ResponsiveContainer measures, then draws
  await frame();
  const firstRenderMs = performance.now() - renderStart;
  // Redraws: 10 batches of 100 new steps each, as a live run delivers them.
  const redraws: number[] = [];
  for (let i = 0; i < 10; i++) {
    const batch = rest.slice(i * 100, (i + 1) * 100);
    const t = performance.now();
    flushSync(() => studio.monitor.getState().ingest(batch));
    await drawn(studio.monitor.getState().version);
    redraws.push(performance.now() - t);
  }
  // A preference change (smoothing) redraws every chart from the full series too.
  const t = performance.now();
  flushSync(() => studio.prefs.getState().set({ smoothing: 0.8 }));
  await frame();
  const smoothingMs = performance.now() - t;
  const sorted = [...redraws].sort((a, b) => a - b);
  const series = [...studio.monitor.getState().data.series.entries()].filter(([, s]) => s.length >= steps).map(([k]) => k);
  const pointsDrawn = [...document.querySelectorAll('figure.chart[data-points]')].reduce((n, f) => n + Number(f.getAttribute('data-points')), 0);
  (window as unknown as { __bench: unknown }).__bench = {
    steps, seriesAtFullLength: series.length, seriesNames: series, ingestMs, firstRenderMs,
    redrawMedianMs: sorted[Math.floor(sorted.length / 2)], redrawMaxMs: sorted[sorted.length - 1], smoothingRedrawMs: smoothingMs, pointsDrawn,
  };
}

run().catch((e) => { (window as unknown as { __bench: unknown }).__bench = { error: String(e) }; });
