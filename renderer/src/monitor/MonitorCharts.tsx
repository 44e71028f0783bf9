// The chart grid with its controls (EMA smoothing, log scale, step/time axis) and the
// layer-by-step heatmaps. Reads the monitor store; used by the run monitor and the UI bench.
import { useDeferredValue, useMemo } from 'react';
import { selectLogScale, selectSetPrefs, selectSmoothing, selectXAxis } from '../stores/prefs-store';
import { selectMonitorData, selectMonitorVersion } from '../stores/monitor-store';
import { useMonitor, usePrefs } from '../app/studio-context';
import { CHARTS, type DrawOptions } from './chart-data';
import { MetricChart } from './MetricChart';
import { LayerHeatmap } from './LayerHeatmap';
import { ExpertUsageHeatmap } from './ExpertUsageHeatmap';

export function ChartControls() {
  const smoothing = usePrefs(selectSmoothing);
  const logScale = usePrefs(selectLogScale);
  const xAxis = usePrefs(selectXAxis);
  const set = usePrefs(selectSetPrefs);
  return (
    <div className="chart-controls" role="group" aria-label="chart controls">
      <label>Smoothing
        <input type="range" min={0} max={0.99} step={0.01} value={smoothing} aria-label="smoothing" onChange={(e) => set({ smoothing: Number(e.target.value) })} />
        <span className="num">{smoothing.toFixed(2)}</span>
      </label>
      <label className="inline"><input type="checkbox" aria-label="log scale" checked={logScale} onChange={(e) => set({ logScale: e.target.checked })} /> Log scale</label>
      <label>X axis
        <select aria-label="x axis" value={xAxis} onChange={(e) => set({ xAxis: e.target.value as 'step' | 'time' })}>
          <option value="step">step</option><option value="time">time</option>
        </select>
      </label>
    </div>
  );
}

export function MonitorCharts() {
  const data = useMonitor(selectMonitorData);
  // Charts follow the data at low priority: typing or clicking never waits for a redraw.
  const version = useDeferredValue(useMonitor(selectMonitorVersion));
  const smoothing = usePrefs(selectSmoothing);
  const logScale = usePrefs(selectLogScale);
  const xAxis = usePrefs(selectXAxis);
  const options = useMemo<DrawOptions>(() => ({ smoothing, logScale, xAxis }), [smoothing, logScale, xAxis]);
  return (
    <div className="charts" data-version={version}>
      {CHARTS.filter((spec) => !spec.shown || spec.shown(data)).map((spec) => (
        <MetricChart key={spec.id} spec={spec} data={data} version={version} options={options} title={spec.id === 'system' ? 'System (CPU)' : undefined} />
      ))}
      <LayerHeatmap id="density per layer" title="Density per layer" rows={data.layerDensity} count={data.layerDensity.length} fixedMax={1} />
      <LayerHeatmap id="attn_kl per layer" title="Attention KL per layer" rows={data.layerKl} count={data.layerKl.length} />
      <ExpertUsageHeatmap usage={data.expertUsage} />
    </div>
  );
}
