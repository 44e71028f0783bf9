// The editor: palette | canvas | inspector, with the layer strip and problems below, and a
// toolbar of commands (rendered by name from the registry) plus preflight and run.
import { useState } from 'react';
import { ReactFlowProvider } from '@xyflow/react';
import { selectPipeline, selectRevision } from '../stores/graph-store';
import { selectShowTemplates } from '../stores/session-store';
import { useGraph, useLive, useSession, useStudio } from '../app/studio-context';
import { selectLiveRuns } from '../stores/live-runs';
import { CommandButton } from '../app/CommandButton';
import { Canvas } from './Canvas';
import { Inspector } from './Inspector';
import { LayerStrip } from './LayerStrip';
import { Palette } from './Palette';
import { ProblemsPanel } from './ProblemsPanel';
import { TemplateGallery } from './TemplateGallery';
import { useValidation } from './use-validation';
import { formatBytes } from './graph-view';

export function EditorView({ searchRequest }: { searchRequest: number }) {
  const { connection, graph, session } = useStudio();
  const pipeline = useGraph(selectPipeline);
  const revision = useGraph(selectRevision);
  const showTemplates = useSession(selectShowTemplates);
  const fromScratch = useSession((s) => s.fromScratch);
  const preflight = useSession((s) => s.preflight);
  const preflightRevision = useSession((s) => s.preflightRevision);
  const problems = useValidation();
  const [busy, setBusy] = useState<'' | 'preflight' | 'run'>('');
  const empty = pipeline.nodes.length === 0;
  // One run at a time: while another is live, a new run waits in the server's queue.
  const live = useLive(selectLiveRuns);
  const queueing = live.length > 0;

  const runPreflight = async () => {
    setBusy('preflight');
    try {
      const report = await connection.api.preflight(graph.getState().pipeline);
      session.getState().setPreflight(report, graph.getState().revision);
      session.getState().notify(report.ok ? 'Preflight passed' : `Preflight found ${report.problems.length} problem(s)`, report.ok ? 'info' : 'error');
    } catch (e) {
      session.getState().notify(`preflight failed: ${(e as Error).message}`, 'error');
    } finally { setBusy(''); }
  };

  const startRun = async () => {
    if (problems.length) { session.getState().notify(`Fix ${problems.length} problem(s) before running`, 'error'); return; }
    setBusy('run');
    try {
      const { runId } = await connection.api.startRun(graph.getState().pipeline);
      session.getState().followRun(runId);
      session.getState().notify(queueing ? `Queued run ${runId}: it starts when ${live.map((r) => r.id).join(', ')} ends` : `Started run ${runId}`);
    } catch (e) {
      session.getState().notify(`could not start the run: ${(e as Error).message}`, 'error');
    } finally { setBusy(''); }
  };

  const badge = validityBadge(problems.length, preflight && { problems: preflight.problems.length, fresh: preflightRevision === revision });
  const memory = preflight && preflightRevision === revision ? Object.entries(preflight.memoryBytes) : [];
  return (
    <ReactFlowProvider>
      <div className="editor">
        <Palette />
        <div className="center">
          <div className="toolbar" role="toolbar" aria-label="editor commands">
            <CommandButton name="templates" />
            <span className="sep" />
            <CommandButton name="undo" /><CommandButton name="redo" />
            <span className="sep" />
            <CommandButton name="copy" /><CommandButton name="paste" /><CommandButton name="delete" />
            <span className="sep" />
            <CommandButton name="layout" /><CommandButton name="import" /><CommandButton name="export" />
            <span className="grow" />
            <span className={`validity${badge.bad ? ' bad' : ''}`} aria-label="validity" title={badge.title}>{empty ? '' : badge.text}</span>
            <button onClick={() => void runPreflight()} disabled={empty || busy !== ''} aria-label="preflight">{busy === 'preflight' ? 'Checking…' : 'Preflight'}</button>
            {queueing && (
              <span className="queue-note" id="queue-note" title={live.map((r) => `${r.id} ${r.status}`).join('\n')}>
                {live.length === 1 ? `A run is ${live[0].status}` : `${live.length} runs are active`}: a new run queues
              </span>
            )}
            <button className="primary" onClick={() => void startRun()} disabled={empty || busy !== ''} aria-label={queueing ? 'queue run' : 'run'}
              aria-describedby={queueing ? 'queue-note' : undefined}>{busy === 'run' ? 'Starting…' : queueing ? '▶ Queue run' : '▶ Run'}</button>
          </div>
          <div className="canvas-wrap">
            <Canvas searchRequest={searchRequest} />
            {((empty && !fromScratch) || showTemplates) && (
              <div className="overlay"><TemplateGallery onClose={empty ? undefined : () => session.getState().setShowTemplates(false)} /></div>
            )}
          </div>
          <div className="bottom">
            <LayerStrip />
            <ProblemsPanel />
            {memory.length > 0 && (
              <section className="memory" aria-label="memory estimate">
                <div className="strip-title">Memory estimate (preflight)</div>
                <ul>{memory.map(([id, bytes]) => <li key={id}><code>{id}</code> {formatBytes(bytes)}</li>)}</ul>
              </section>
            )}
          </div>
        </div>
        <Inspector />
      </div>
    </ReactFlowProvider>
  );
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The toolbar's badge: validation first, then the last preflight of this very pipeline. */
export function validityBadge(problems: number, preflight: { problems: number; fresh: boolean } | null): { text: string; bad: boolean; title: string } {
  if (problems > 0) return { text: plural(problems, 'problem'), bad: true, title: 'The pipeline does not validate: see the problems panel.' };
  if (!preflight) return { text: 'valid', bad: false, title: 'The pipeline validates. Preflight has not been run.' };
  if (!preflight.fresh) return { text: 'valid · preflight outdated', bad: false, title: 'The pipeline changed since the last preflight: run it again.' };
  if (preflight.problems > 0) return { text: plural(preflight.problems, 'preflight error'), bad: true, title: 'The pipeline validates, but preflight found problems: see the problems panel.' };
  return { text: 'valid · preflight passed', bad: false, title: 'The pipeline validates and passed preflight.' };
}
