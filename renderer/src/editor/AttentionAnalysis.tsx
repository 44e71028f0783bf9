// "Analyze attention" in the inspector of a Model or Replace node: the dense teacher's attention
// profile on calibration batches of the pipeline's data (StudioApi.analyzeAttention), shown per
// layer as the pooled mass map, the floor curve and the recommended budgets; and, next to a
// Replace node's mask, the lowest attn_kl that mask allows. Definitions: docs/metrics.md.
import { useEffect, useMemo, useRef, useState } from 'react';
import { CartesianGrid, Line, LineChart, ReferenceLine, XAxis, YAxis } from 'recharts';
import { attentionProfileRequest, budgetFor, profileRequestKey, type AttentionProfileRequest, type ProfileReport } from '../../../core/attention-profile';
import type { NodeOf } from '../../../core/schema';
import { effectiveSeed } from '../../../core/seeds';
import { selectPipeline } from '../stores/graph-store';
import { useAnalysis, useGraph, useStudio } from '../app/studio-context';
import { replaceBound } from './replace-bound';

type AnalyzableNode = NodeOf<'model'> | NodeOf<'replace'>;

/** The node's profile request (or why there is none) and what the store holds for it. */
function useProfile(nodeId: string) {
  const pipeline = useGraph(selectPipeline);
  const request = useMemo(() => attentionProfileRequest(pipeline, nodeId), [pipeline, nodeId]);
  const key = typeof request === 'string' ? null : profileRequestKey(request);
  const entry = useAnalysis((s) => (key ? s.entries[key] : undefined));
  return { request, entry, pipelineSeed: pipeline.seed };
}

function describe(r: AttentionProfileRequest): string {
  return `Teacher of ${r.model} on ${r.batches * r.batch_size} validation windows x ${r.seq} tokens of ${r.data.source}, block ${r.block}` +
    `, masks per ${r.share_gqa ? 'GQA group' : 'query head'}.`;
}

export function AttentionAnalysis({ node }: { node: AnalyzableNode }) {
  const { analysis } = useStudio();
  const { request, entry } = useProfile(node.id);
  return (
    <section className="analysis" aria-label="attention analysis">
      <div className="mask-head">
        <button type="button" className="small" disabled={typeof request === 'string' || entry?.status === 'running'}
          onClick={() => { if (typeof request !== 'string') void analysis.getState().analyze(request); }}>
          {entry?.status === 'running' ? 'Analyzing…' : 'Analyze attention'}
        </button>
      </div>
      <p className="hint">{typeof request === 'string' ? request : describe(request)}</p>
      {entry?.status === 'running' && <p className="hint" aria-live="polite">Profiling the dense teacher (a forward pass per batch; seconds on the demo model).</p>}
      {entry?.status === 'error' && <div className="field-error" role="alert">{entry.error}</div>}
      {entry?.status === 'done' && <ProfileView report={entry.report} node={node} />}
    </section>
  );
}

/** Next to a Replace node's mask: "at this mask, attn_kl >= X" once its profile is known. */
export function MaskBoundLine({ node }: { node: NodeOf<'replace'> }) {
  const { request, entry, pipelineSeed } = useProfile(node.id);
  const mask = node.params.mask;
  const bound = useMemo(() => {
    if (entry?.status !== 'done' || !Array.isArray(node.params.layers)) return null;
    try {
      return replaceBound(entry.report, { ...mask, random_seed: effectiveSeed(Number(mask.random_seed) || 0, pipelineSeed) }, node.params.layers);
    } catch (e) {
      return (e as Error).message;
    }
  }, [entry, mask, node.params.layers, pipelineSeed]);
  if (typeof request === 'string') return null;
  if (!bound) return <p className="hint">Analyze attention (below) to see the lowest attn_kl this mask allows.</p>;
  if (typeof bound === 'string') return <p className="hint" aria-label="attention bound">No attn_kl bound: {bound}.</p>;
  const seq = entry?.status === 'done' ? entry.report.seq : 0;
  const perLayer = bound.layers.map((l) => `${l.layer}: ${l.bound.value.toFixed(3)}`).join(', ');
  return (
    <div className="bound" aria-label="attention bound">
      <p className="bound-line">at this mask, attn_kl {bound.kind === 'static' ? '≥' : '≳'} <b>{bound.mean.toFixed(3)}</b></p>
      <p className="hint">
        {bound.kind === 'static'
          ? `Lower bound for any student confined to this mask at ${seq} tokens (density ${(100 * bound.layers[0].bound.density).toFixed(1)}%) ` +
            `on the calibration data (mean over layers ${perLayer}).`
          : `Top-k blocks are chosen per input, so this is the oracle floor at the mask's density (${(100 * bound.layers[0].bound.density).toFixed(1)}%): ` +
            `the best a fixed mask of that density reaches on the calibration data, not a strict bound (layers ${perLayer}).`}
      </p>
    </div>
  );
}

function ProfileView({ report, node }: { report: ProfileReport; node: AnalyzableNode }) {
  const replaced = node.kind === 'replace' && Array.isArray(node.params.layers) ? node.params.layers : null;
  const [layer, setLayer] = useState(replaced ? replaced[0] : 1);
  const [target, setTarget] = useState(report.target_kl);
  const l = report.layers[Math.min(Math.max(layer, 1), report.layers.length) - 1];
  const budgets = report.layers.map((x) => budgetFor(x.curve, target));
  const inRange = (n: number) => replaced !== null && n >= replaced[0] && n <= replaced[1];
  return (
    <div className="profile-view">
      <div className="mask-head">
        <label>
          Layer
          <select aria-label="profile layer" value={l.layer + 1} onChange={(e) => setLayer(Number(e.target.value))}>
            {report.layers.map((x) => <option key={x.layer} value={x.layer + 1}>{x.layer + 1}{inRange(x.layer + 1) ? ' (replaced)' : ''}</option>)}
          </select>
        </label>
        <span className="density">budget {(100 * budgets[l.layer].density).toFixed(0)}%</span>
      </div>
      <MassMap mass={l.mass} layer={l.layer + 1} />
      <p className="hint">Teacher attention mass per block pair (mean over heads; query blocks down, key blocks across; brighter = more, square-root scale).</p>
      <FloorChart report={report} layer={l.layer} target={target} />
      <p className="hint">Floor: the lowest attn_kl any student reaches at each density (oracle masks); recall: the teacher mass they keep.</p>
      <label className="target">
        Target attn_kl
        <input type="number" aria-label="target attn_kl" min={0} step={0.01} value={target}
          onChange={(e) => { const v = Number(e.target.value); if (Number.isFinite(v) && v >= 0) setTarget(v); }} />
      </label>
      <table className="budgets" aria-label="recommended budgets">
        <thead><tr><th>layer</th><th>budget</th><th>floor</th><th>recall</th></tr></thead>
        <tbody>
          {budgets.map((b, i) => (
            <tr key={i} className={inRange(i + 1) ? 'replaced' : undefined}>
              <td>{i + 1}</td><td>{(100 * b.density).toFixed(0)}%</td><td>{b.floor.toFixed(3)}</td><td>{b.recall.toFixed(3)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="hint">Budget: the smallest density whose floor is at most the target. Mean {(100 * budgets.reduce((s, b) => s + b.density, 0) / budgets.length).toFixed(0)}%.</p>
    </div>
  );
}

const MAP_SIZE = 240;

function MassMap({ mass, layer }: { mass: number[][][]; layer: number }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const ctx = canvas.current?.getContext('2d');
    if (!ctx) return;
    const n = mass[0].length;
    const mean = (i: number, j: number) => mass.reduce((s, h) => s + h[i][j], 0) / mass.length;
    let max = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) max = Math.max(max, mean(i, j));
    const cell = MAP_SIZE / n;
    ctx.fillStyle = '#1b2130';
    ctx.fillRect(0, 0, MAP_SIZE, MAP_SIZE);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j <= i; j++) {
        const t = max > 0 ? Math.sqrt(mean(i, j) / max) : 0;
        ctx.fillStyle = `rgb(${Math.round(27 + t * 215)}, ${Math.round(33 + t * 151)}, ${Math.round(48 + t * 27)})`;
        ctx.fillRect(j * cell, i * cell, Math.max(cell - (cell > 4 ? 1 : 0), 1), Math.max(cell - (cell > 4 ? 1 : 0), 1));
      }
    }
  }, [mass]);
  return <canvas ref={canvas} width={MAP_SIZE} height={MAP_SIZE} role="img" aria-label={`teacher attention mass map of layer ${layer}: ${mass[0].length} blocks per side`} />;
}

function FloorChart({ report, layer, target }: { report: ProfileReport; layer: number; target: number }) {
  const data = report.layers[layer].curve;
  return (
    <div className="floor-chart" role="img" aria-label={`floor curve of layer ${layer + 1}`}>
      <LineChart width={300} height={170} data={data} margin={{ top: 6, right: 4, bottom: 0, left: -12 }}>
        <CartesianGrid stroke="#273149" strokeDasharray="3 3" />
        <XAxis dataKey="density" type="number" domain={[0, 1]} tickFormatter={(v: number) => `${Math.round(v * 100)}%`} stroke="#7d889e" fontSize={11} />
        <YAxis yAxisId="kl" stroke="#7d889e" fontSize={11} tickFormatter={(v: number) => v.toFixed(1)} />
        <YAxis yAxisId="recall" orientation="right" domain={[0, 1]} stroke="#7d889e" fontSize={11} width={30} />
        <ReferenceLine yAxisId="kl" y={target} stroke="#f2b84b" strokeDasharray="4 3" />
        <Line yAxisId="kl" dataKey="floor" name="floor" stroke="#5aa9ff" dot={false} isAnimationActive={false} />
        <Line yAxisId="recall" dataKey="recall" name="recall" stroke="#3ecf8e" dot={false} isAnimationActive={false} />
      </LineChart>
      <div className="legend">
        <span><i style={{ background: '#5aa9ff' }} />floor (nats, left)</span>
        <span><i style={{ background: '#3ecf8e' }} />recall (right)</span>
        <span><i style={{ background: '#f2b84b' }} />target</span>
      </div>
    </div>
  );
}
