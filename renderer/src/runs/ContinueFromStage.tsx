// "Continue from here": pick a finished stage of a run and continue it with the editor's
// current graph (StudioApi.forkRun). The service refuses, in one line naming the first differing
// node, when stages 1..k of the graph differ from what the run ran; the new run starts from that
// stage's checkpoint, is listed under its parent and opens in the monitor.
import { useState } from 'react';
import type { RunEvent } from '../../../core/events';
import { useStudio } from '../app/studio-context';

interface FinishedStage { stage: number; name: string }

/** Stages with a checkpoint, 1-based, named as the run named them. */
export function finishedStages(events: readonly RunEvent[]): FinishedStage[] {
  const names = new Map<number, string>();
  const done: FinishedStage[] = [];
  for (const e of events) {
    if (e.type === 'stage_start') names.set(e.stage, e.name);
    if (e.type === 'checkpoint' && !done.some((d) => d.stage === e.stage + 1)) done.push({ stage: e.stage + 1, name: names.get(e.stage) ?? `Stage ${e.stage + 1}` });
  }
  return done.sort((a, b) => a.stage - b.stage);
}

export function ContinueFromStage({ runId }: { runId: string }) {
  const { connection, runs, session, graph } = useStudio();
  const [stages, setStages] = useState<FinishedStage[] | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');

  const open = async () => {
    setError('');
    try {
      const detail = await runs.getState().fetchDetail(runId);
      setStages(finishedStages(detail.events));
    } catch (e) {
      setError((e as Error).message);
      setStages([]);
    }
  };

  const fork = async (stage: number) => {
    setBusy(true);
    setError('');
    try {
      const { runId: child } = await connection.api.forkRun({ runId, stage, pipeline: graph.getState().pipeline });
      await runs.getState().refresh();
      setStages(null);
      session.getState().notify(`Continuing ${runId} from stage ${stage} as ${child}`);
      session.getState().followRun(child);
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };

  if (stages === null) {
    return <button onClick={() => void open()} aria-label={`continue ${runId}`} title="Continue a finished stage of this run with the editor's graph">Continue…</button>;
  }
  return (
    <div className="continue-stages" role="group" aria-label={`finished stages of ${runId}`}>
      {stages.length === 0 && !error && <span className="muted">No finished stage to continue from.</span>}
      {stages.map((s) => (
        <div key={s.stage} className="continue-stage">
          <span>{s.stage}. {s.name}</span>
          <button disabled={busy} onClick={() => void fork(s.stage)} aria-label={`continue ${runId} from stage ${s.stage}`}
            title="Start a new run from this stage's checkpoint with the editor's graph (stages up to here must be unchanged)">Continue from here</button>
        </div>
      ))}
      <button onClick={() => { setStages(null); setError(''); }} aria-label={`close stages of ${runId}`}>Close</button>
      {error && <div className="field-error" role="alert">{error}</div>}
    </div>
  );
}

/** "from <parent> @ stage k" under a fork's name; clicking it follows the parent in the monitor. */
export function ParentLink({ parent }: { parent: { runId: string; stage: number } }) {
  const { session } = useStudio();
  return (
    <div className="muted run-parent">
      ↳ continues <button className="link" onClick={() => session.getState().followRun(parent.runId)} aria-label={`parent ${parent.runId}`}>{parent.runId}</button> after stage {parent.stage}
    </div>
  );
}
