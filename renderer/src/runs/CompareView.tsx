// Compare runs: key curves overlaid (one line per run) and a param-level diff of each run's
// pipeline against the first ticked run.
import { useEffect, useMemo, useState } from 'react';
import type { RunDetail } from '../../../core/api';
import { applyEvent, type MonitorData } from '../stores/monitor-store';
import { useRuns, usePrefs, useStudio } from '../app/studio-context';
import { selectLogScale, selectSmoothing, selectXAxis } from '../stores/prefs-store';
import { colorAt, type ChartSpec, type DrawOptions } from '../monitor/chart-data';
import { MetricChart } from '../monitor/MetricChart';
import { Series } from '../series/column';
import { diffPipelines, formatValue } from './pipeline-diff';

const COMPARED = ['loss', 'attn_kl', 'ppl_ratio', 'density', 'attn_recall', 'out_cos'];

/** Folds several runs into one MonitorData whose series are named `<metric>@<runId>`. */
export function mergeRuns(details: RunDetail[]): MonitorData {
  const merged: MonitorData = { series: new Map(), stages: [], layerDensity: [], layerKl: [], logs: [], systemSource: null, startTime: null, lastStep: -1, eventCount: 0, recentSteps: [] };
  for (const d of details) {
    const one: MonitorData = { series: new Map(), stages: [], layerDensity: [], layerKl: [], logs: [], systemSource: null, startTime: null, lastStep: -1, eventCount: 0, recentSteps: [] };
    for (const e of d.events) applyEvent(one, e);
    for (const metric of COMPARED) {
      const s = one.series.get(metric);
      if (s) merged.series.set(`${metric}@${d.id}`, s);
    }
    if (!one.series.has('out_cos')) merged.series.set(`out_cos@${d.id}`, new Series());
  }
  return merged;
}

export function CompareView({ ids }: { ids: string[] }) {
  const { runs } = useStudio();
  useRuns((s) => s.details);
  const [details, setDetails] = useState<RunDetail[]>([]);
  const [error, setError] = useState('');
  const smoothing = usePrefs(selectSmoothing);
  const logScale = usePrefs(selectLogScale);
  const xAxis = usePrefs(selectXAxis);
  useEffect(() => {
    let live = true;
    Promise.all(ids.map((id) => runs.getState().fetchDetail(id)))
      .then((d) => { if (live) { setDetails(d); setError(''); } }, (e: Error) => live && setError(`could not load runs: ${e.message}`));
    return () => { live = false; };
  }, [ids, runs]);
  const data = useMemo(() => mergeRuns(details), [details]);
  const specs = useMemo<ChartSpec[]>(() => COMPARED.map((metric) => ({
    id: metric, title: `${metric} by run`,
    lines: () => details.map((d, i) => ({ key: `${metric}@${d.id}`, label: d.id, color: colorAt(i), smooth: metric === 'loss' })),
  })), [details]);
  const options = useMemo<DrawOptions>(() => ({ smoothing, logScale, xAxis: xAxis === 'time' ? 'step' : xAxis }), [smoothing, logScale, xAxis]);

  return (
    <section className="compare" aria-label="compare runs">
      <h3>Comparing {ids.length} runs</h3>
      {error && <p className="field-error" role="alert">{error}</p>}
      <div className="charts compact">
        {specs.map((s) => <MetricChart key={s.id} spec={s} data={data} version={details.length} options={options} />)}
      </div>
      <h3>Pipeline differences</h3>
      {details.slice(1).map((d) => {
        const diff = diffPipelines(details[0].pipeline, d.pipeline);
        return (
          <div key={d.id} className="diff" aria-label={`diff ${details[0].id} ${d.id}`}>
            <div className="diff-head"><code>{details[0].id}</code> → <code>{d.id}</code> · {diff.length ? `${diff.length} change${diff.length > 1 ? 's' : ''}` : 'identical pipelines'}</div>
            {diff.length > 0 && (
              <table className="diff-table">
                <tbody>
                  {diff.map((e, i) => (
                    <tr key={i} className={`diff-${e.kind}`}>
                      <td><code>{e.path}</code></td><td>{e.kind}</td><td className="before">{formatValue(e.before)}</td><td className="after">{formatValue(e.after)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </div>
        );
      })}
    </section>
  );
}
