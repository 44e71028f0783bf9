// Every validation problem (live, the CLI's validatePipeline) and every preflight problem,
// with its JSON path; clicking one selects its node.
import type { ValidationProblem } from '../../../core/api';
import { selectPreflight } from '../stores/session-store';
import { useSession, useStudio } from '../app/studio-context';
import { useValidation } from './use-validation';

export function ProblemsPanel() {
  const { graph } = useStudio();
  const problems = useValidation();
  const preflight = useSession(selectPreflight);
  const rows: (ValidationProblem & { source: string })[] = [
    ...problems.map((p) => ({ ...p, source: 'validate' })),
    ...(preflight?.problems ?? []).map((p) => ({ ...p, source: 'preflight' })),
  ];
  return (
    <section className="problems" aria-label="problems">
      <div className="strip-title">Problems <span className={`count${rows.length ? ' bad' : ''}`}>{rows.length}</span></div>
      {rows.length === 0 ? <p className="ok-line">No problems: the pipeline is valid.</p> : (
        <ul>
          {rows.map((p, i) => (
            <li key={i}>
              <button className="problem" onClick={() => p.node && graph.getState().select([p.node])} aria-label={`problem ${p.path}: ${p.message}`}>
                <span className="tag">{p.source}</span><code>{p.path}</code> {p.message}
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
