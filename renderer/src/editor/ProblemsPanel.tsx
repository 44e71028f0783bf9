// Every validation problem (live, the CLI's validatePipeline) and every preflight problem,
// each naming its node by id and label and then the field; clicking one selects its node.
import type { ValidationProblem } from '../../../core/api';
import { selectPipeline, selectRevision } from '../stores/graph-store';
import { selectPreflight } from '../stores/session-store';
import { useGraph, useSession, useStudio } from '../app/studio-context';
import { useValidation } from './use-validation';
import { placeText, problemPlace } from './problem-text';

export function ProblemsPanel() {
  const { graph } = useStudio();
  const pipeline = useGraph(selectPipeline);
  const revision = useGraph(selectRevision);
  const problems = useValidation();
  const preflight = useSession(selectPreflight);
  const stale = useSession((s) => s.preflightRevision) !== revision;
  const rows: (ValidationProblem & { source: string })[] = [
    ...problems.map((p) => ({ ...p, source: 'validate' })),
    ...(preflight?.problems ?? []).map((p) => ({ ...p, source: stale ? 'preflight, before your last edit' : 'preflight' })),
  ];
  return (
    <section className="problems" aria-label="problems">
      <div className="strip-title">Problems <span className={`count${rows.length ? ' bad' : ''}`}>{rows.length}</span></div>
      {rows.length === 0 ? <p className="ok-line">No problems: the pipeline is valid.</p> : (
        <ul>
          {rows.map((p, i) => {
            const place = placeText(problemPlace(pipeline, p));
            return (
              <li key={i}>
                <button className="problem" onClick={() => p.node && graph.getState().select([p.node])} aria-label={`problem ${place}: ${p.message}`} title={p.path}>
                  <span className="tag">{p.source}</span><code>{place}</code> {p.message}
                </button>
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}
