// Run history (listRuns) with status and key numbers; open a run's exact pipeline in the
// editor, follow it in the monitor, continue a finished stage with the editor's graph (forks are
// listed under their parent), or tick two or more to compare.
import { useEffect } from 'react';
import type { RunSummary } from '../../../core/api';
import { selectCompare, selectRuns, selectRunsError, selectRunsLoading } from '../stores/runs-store';
import { useRuns, useStudio } from '../app/studio-context';
import { CompareView } from './CompareView';
import { AttachRunForm, DetachRunButton } from './AttachRunForm';
import { ContinueFromStage, ParentLink } from './ContinueFromStage';
import { familyOrder } from './run-family';

function fmt(v: number | undefined, digits = 3): string {
  return v === undefined || v === null || Number.isNaN(v) ? '–' : Number(v.toPrecision(digits)).toString();
}

function duration(run: RunSummary): string {
  const end = run.endedAt ?? Date.now();
  const s = Math.max(0, Math.round((end - run.startedAt) / 1000));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

export function RunsView() {
  const { runs: store, session, graph } = useStudio();
  const runs = useRuns(selectRuns);
  const compare = useRuns(selectCompare);
  const error = useRuns(selectRunsError);
  const loading = useRuns(selectRunsLoading);
  useEffect(() => { void store.getState().refresh(); }, [store]);

  const openInEditor = async (id: string) => {
    try {
      const detail = await store.getState().fetchDetail(id);
      graph.getState().load(detail.pipeline);
      session.getState().setView('editor');
      session.getState().notify(`Opened the pipeline of run ${id}`);
    } catch (e) {
      session.getState().notify(`could not open run ${id}: ${(e as Error).message}`, 'error');
    }
  };

  return (
    <div className="runs">
      <div className="runs-head">
        <h2>Runs</h2>
        <button onClick={() => void store.getState().refresh()} aria-label="refresh runs">{loading ? 'Refreshing…' : 'Refresh'}</button>
        <AttachRunForm />
        <span className="muted">Tick two or more runs to compare them.</span>
      </div>
      {error && <p className="field-error" role="alert">{error}</p>}
      {runs.length === 0 && !loading ? <p className="muted">No runs yet. Run a pipeline from the editor.</p> : (
        <table className="runs-table" aria-label="run history">
          <thead>
            <tr><th aria-label="compare" /><th>Run</th><th>Status</th><th>Started</th><th>Duration</th><th>Stages</th><th>ppl_ratio</th><th>attn_kl</th><th>out_cos</th><th>density</th><th /></tr>
          </thead>
          <tbody>
            {familyOrder(runs).map(({ run: r, depth }) => (
              <tr key={r.id} aria-label={`run ${r.id}`} data-depth={depth}>
                <td><input type="checkbox" aria-label={`compare ${r.id}`} checked={compare.includes(r.id)} onChange={() => store.getState().toggleCompare(r.id)} /></td>
                <td style={depth ? { paddingLeft: `${depth * 1.5}em` } : undefined}>{r.parent && <ParentLink parent={r.parent} />}<div className="run-name">{r.name}</div><code className="muted">{r.id}</code>{r.attachedFrom && <div className="muted" title={r.attachedFrom}>attached: {r.attachedFrom}</div>}</td>
                <td><span className={`pill ${r.status}`}>{r.status}</span></td>
                <td>{new Date(r.startedAt).toLocaleString()}</td>
                <td>{duration(r)}</td>
                <td>{r.stages}</td>
                <td>{fmt(r.final.ppl_ratio)}</td>
                <td>{fmt(r.final.attn_kl)}</td>
                <td>{fmt(r.final.out_cos)}</td>
                <td>{fmt(r.final.density)}</td>
                <td className="row-actions">
                  <button onClick={() => session.getState().followRun(r.id)} aria-label={`monitor ${r.id}`}>Monitor</button>
                  <button onClick={() => void openInEditor(r.id)} aria-label={`open ${r.id} in editor`}>Open pipeline</button>
                  {r.attachedFrom && <DetachRunButton runId={r.id} />}
                  {!r.attachedFrom && r.stages > 0 && <ContinueFromStage runId={r.id} />}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {compare.length >= 2 && <CompareView ids={compare} />}
    </div>
  );
}
