// UI bench page: the run monitor's charts fed by a synthetic 100k-step run through the monitor's
// real event path (connection -> followRun -> monitor store -> charts). Publishes its figures on
// window.__bench for scripts/bench-ui.mjs:
// - redraw: after a batch of new points (100 steps, with an eval and a system sample, so every
//   chart has new points), the time until the charts have drawn it and the frame is painted;
//   median of several, for the monitor and for the reference charts (the drawing path before
//   the pixel-column reduction, reference-charts.tsx). Both are mounted on top of each other,
//   each with its own copy of the run, and measured in turns, so load from other programs
//   weighs on both alike;
// - stream: events sent at 20 steps/s for a while, through followRun as a live run sends them;
//   events and steps received by the store and drawn by the charts, and the longest time
//   between two frames meanwhile (a redraw that holds the page up shows here).
import { createRoot } from 'react-dom/client';
import { flushSync } from 'react-dom';
import { useDeferredValue, useMemo, type ReactElement } from 'react';
import '@xyflow/react/dist/style.css';
import '../styles.css';
import type { RunDetail, StudioApi } from '../../../core/api';
import { STUDIO_METHODS } from '../../../core/api';
import type { RunEvent } from '../../../core/events';
import type { StudioConnection } from '../api/connection';
import { createStudio, StudioProvider, useMonitor, usePrefs, type Studio } from '../app/studio-context';
import { ChartControls, MonitorCharts } from '../monitor/MonitorCharts';
import { StageTimeline } from '../monitor/StageTimeline';
import { CHARTS } from '../monitor/chart-data';
import { followRun } from '../stores/follow-run';
import { selectMonitorData, selectMonitorVersion } from '../stores/monitor-store';
import { selectLogScale, selectSmoothing, selectXAxis } from '../stores/prefs-store';
import { ReferenceCharts } from './reference-charts';
import { syntheticRun } from './fixture';

const params = new URLSearchParams(location.search);
const steps = Number(params.get('steps') ?? 100_000);
const redraws = Number(params.get('redraws') ?? 15);
const streamSeconds = Number(params.get('stream') ?? 10);
const STEPS_PER_SECOND = 20;
const BATCH = 100;

// One event list, cut by step: each step's events (the step, then its eval, system sample and
// stage changes up to the next step). History, redraw batches and the live stream follow each other.
const streamSteps = streamSeconds * STEPS_PER_SECOND;
const events = syntheticRun(steps + redraws * BATCH + streamSteps + BATCH);
const preamble: RunEvent[] = [];
const byStep: RunEvent[][] = [];
for (const e of events) {
  if (e.type === 'step') byStep.push([]);
  (byStep.length ? byStep[byStep.length - 1] : preamble).push(e);
}
const cut = (from: number, to: number) => byStep.slice(from, to).flat();
const history = [...preamble, ...cut(0, steps)];

/** An in-page service: getRun answers the history, live events go to the subscribers. */
function benchConnection() {
  const listeners = new Set<(e: RunEvent) => void>();
  const api = {} as Record<string, unknown>;
  for (const m of STUDIO_METHODS) api[m] = () => Promise.reject(new Error(`${m}: the UI bench page has no service`));
  api.getRun = async (): Promise<RunDetail> => detail;
  api.onRunEvent = (l: (e: RunEvent) => void) => { listeners.add(l); return () => listeners.delete(l); };
  const connection: StudioConnection = { api: api as unknown as StudioApi, kind: 'websocket', getState: () => 'open', onStateChange: () => () => {}, onReconnect: () => () => {}, close: () => {} };
  return { connection, emit: (e: RunEvent) => { for (const l of listeners) l(e); } };
}

const detail: RunDetail = { id: 'bench', name: 'bench', status: 'running', startedAt: 0, stages: 3, final: {}, pipeline: null as never, events: history, runDir: '' };
const service = benchConnection();
const studio = createStudio(service.connection, null);
const reference = createStudio(benchConnection().connection, null);

/** Resolves after the next frame has been painted. */
const painted = () => new Promise<void>((resolve) => requestAnimationFrame(() => { const c = new MessageChannel(); c.port1.onmessage = () => resolve(); c.port2.postMessage(null); }));

/** Resolves once the (deferred) charts of `layer` have rendered the store's current version and it is painted. */
const drawn = (s: Studio, layer: HTMLElement) => new Promise<void>((resolve) => {
  const version = String(s.monitor.getState().version);
  const poll = () => {
    if (layer.querySelector('.charts')?.getAttribute('data-version') === version) void painted().then(resolve);
    else setTimeout(poll, 1);
  };
  poll();
});

function MonitorPage() {
  const stages = useMonitor((s) => s.data.stages);
  return (
    <div className="monitor" style={{ height: '100vh' }}>
      <div className="monitor-head"><h2 className="run-title">UI bench · {steps.toLocaleString()} steps</h2><div className="grow" /><ChartControls /></div>
      <div className="monitor-body"><StageTimeline stages={stages} /><MonitorCharts /></div>
    </div>
  );
}

function ReferencePage() {
  const data = useMonitor(selectMonitorData);
  const version = useDeferredValue(useMonitor(selectMonitorVersion));
  const smoothing = usePrefs(selectSmoothing);
  const logScale = usePrefs(selectLogScale);
  const xAxis = usePrefs(selectXAxis);
  const options = useMemo(() => ({ smoothing, logScale, xAxis }), [smoothing, logScale, xAxis]);
  return (
    <div className="monitor" style={{ height: '100vh' }}>
      <div className="monitor-head"><h2 className="run-title">UI bench · reference charts</h2><div className="grow" /></div>
      <div className="monitor-body"><StageTimeline stages={data.stages} /><ReferenceCharts data={data} version={version} options={options} /></div>
    </div>
  );
}

/** The phase running now, for a profiler attached to the page. */
const phase = (name: string) => { (window as unknown as { __benchPhase: string }).__benchPhase = name; };

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

/** A page layer over the whole viewport; only the one measured is visible (painted). */
function layer(): HTMLElement {
  const el = document.createElement('div');
  el.style.cssText = 'position:absolute;inset:0;visibility:hidden';
  document.getElementById('root')!.append(el);
  return el;
}

/** Mounts `page` for `s` in `el` and returns the time until it is drawn. */
async function mount(s: Studio, el: HTMLElement, page: ReactElement) {
  el.style.visibility = 'visible';
  const start = performance.now();
  flushSync(() => createRoot(el).render(<StudioProvider studio={s}>{page}</StudioProvider>));
  await drawn(s, el);
  await new Promise((r) => setTimeout(r, 100)); // ResponsiveContainer measures, then draws
  await painted();
  const ms = performance.now() - start;
  el.style.visibility = 'hidden';
  return ms;
}

/** Time from new points in `s`'s store to their drawn, painted frame. */
async function redraw(s: Studio, el: HTMLElement, batch: RunEvent[]) {
  el.style.visibility = 'visible';
  await painted();
  const t = performance.now();
  flushSync(() => s.monitor.getState().ingest(batch));
  await drawn(s, el);
  const ms = performance.now() - t;
  el.style.visibility = 'hidden';
  return ms;
}

/** Sends the steps [from, from + n) at 20 steps/s through the connection, as a live run does. */
async function stream(el: HTMLElement, from: number, n: number) {
  let longestFrameGapMs = 0;
  let lastFrame = performance.now();
  let watching = true;
  const watch = (now: number) => {
    longestFrameGapMs = Math.max(longestFrameGapMs, now - lastFrame);
    lastFrame = now;
    if (watching) requestAnimationFrame(watch);
  };
  requestAnimationFrame(watch);
  let redrawCount = 0;
  const mutation = new MutationObserver(() => { redrawCount++; });
  mutation.observe(el.querySelector('.charts')!, { attributes: true, attributeFilter: ['data-version'] });
  const storedBefore = studio.monitor.getState().data.eventCount;
  let sentEvents = 0;
  let sentSteps = 0;
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      // Every step due by now goes out (a late timer sends a burst, as a socket would).
      const due = Math.min(n, Math.floor(((performance.now() - t0) / 1000) * STEPS_PER_SECOND) + 1);
      for (; sentSteps < due; sentSteps++) for (const e of cut(from + sentSteps, from + sentSteps + 1)) { service.emit(e); sentEvents++; }
      if (sentSteps >= n) { clearInterval(timer); resolve(); }
    }, 1000 / STEPS_PER_SECOND);
  });
  const seconds = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 400)); // followRun's last batch
  await drawn(studio, el);
  watching = false;
  mutation.disconnect();
  return { seconds, sentEvents, sentSteps, storedEvents: studio.monitor.getState().data.eventCount - storedBefore, redrawCount, longestFrameGapMs };
}

/** Stored steps behind the lr chart's line (one line, one point per step). */
const drawnSteps = (el: HTMLElement) => Number(el.querySelector('figure.chart[aria-label="lr"]')?.getAttribute('data-source-points') ?? NaN);

async function run() {
  // The monitor's copy arrives as in the app: followRun loads the history, then streams.
  const loadStart = performance.now();
  const stop = followRun(service.connection, studio.monitor, 'bench', { onError: (m) => { throw new Error(m); } });
  while (studio.monitor.getState().runId !== 'bench') await new Promise((r) => setTimeout(r, 1));
  const ingestMs = performance.now() - loadStart;
  reference.monitor.getState().load(detail);

  const refLayer = layer();
  const monLayer = layer();
  phase('mount');
  const referenceFirstRenderMs = await mount(reference, refLayer, <ReferencePage />);
  const firstRenderMs = await mount(studio, monLayer, <MonitorPage />);

  phase('redraws');
  const refTimes: number[] = [];
  const monTimes: number[] = [];
  for (let i = 0; i < redraws; i++) {
    const batch = cut(steps + i * BATCH, steps + (i + 1) * BATCH);
    refTimes.push(await redraw(reference, refLayer, batch));
    monTimes.push(await redraw(studio, monLayer, batch));
  }
  refLayer.remove();
  monLayer.style.visibility = 'visible';

  // A preference change (smoothing) redraws every chart from the full series.
  phase('smoothing');
  const t = performance.now();
  flushSync(() => studio.prefs.getState().set({ smoothing: 0.8 }));
  await drawn(studio, monLayer);
  await painted();
  const smoothingRedrawMs = performance.now() - t;

  phase('stream');
  const data = studio.monitor.getState().data;
  const stepsBefore = data.series.get('loss')!.length;
  const drawnBefore = drawnSteps(monLayer);
  const live = await stream(monLayer, steps + redraws * BATCH, streamSteps);
  stop();
  phase('done');

  const drawnKeys = new Set(CHARTS.filter((c) => !c.shown || c.shown(data)).flatMap((c) => c.lines(data).map((l) => l.key)));
  const fullSeries = [...drawnKeys].filter((k) => (data.series.get(k)?.length ?? 0) >= steps);
  const pointsDrawn = [...monLayer.querySelectorAll('figure.chart[data-points]')].reduce((n, f) => n + Number(f.getAttribute('data-points')), 0);
  (window as unknown as { __bench: unknown }).__bench = {
    steps, seriesDrawn: fullSeries.length, seriesNames: fullSeries, redraws, ingestMs, firstRenderMs,
    redrawMedianMs: median(monTimes), redrawMaxMs: Math.max(...monTimes),
    referenceFirstRenderMs, referenceRedrawMedianMs: median(refTimes), referenceRedrawMaxMs: Math.max(...refTimes),
    speedup: median(refTimes) / median(monTimes), smoothingRedrawMs, pointsDrawn,
    streamStepsPerSecond: STEPS_PER_SECOND, streamSeconds: live.seconds, streamEventsSent: live.sentEvents, streamEventsStored: live.storedEvents,
    streamStepsSent: live.sentSteps, streamStepsStored: data.series.get('loss')!.length - stepsBefore, streamStepsDrawn: drawnSteps(monLayer) - drawnBefore,
    streamRedraws: live.redrawCount, streamLongestFrameGapMs: live.longestFrameGapMs,
  };
}

run().catch((e) => { (window as unknown as { __bench: unknown }).__bench = { error: String(e) }; });
