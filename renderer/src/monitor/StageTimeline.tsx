// Stages in order with their status and gate verdicts (every check with its value).
import type { StageSpan } from '../stores/monitor-store';
import { gateCheckState } from '../../../core/events';

export function StageTimeline({ stages }: { stages: StageSpan[] }) {
  if (!stages.length) return <section className="timeline" aria-label="stage timeline"><p className="hint">No stage has started yet.</p></section>;
  return (
    <section className="timeline" aria-label="stage timeline">
      {stages.map((s, i) => {
        const verdict = s.verdicts[s.verdicts.length - 1];
        return (
          <div key={i} className={`stage stage-${s.status}`} aria-label={`stage ${s.stage + 1} ${s.name}: ${s.status}`}>
            <div className="stage-head">
              <span className="stage-n">{s.stage + 1}</span>
              <span className="stage-name">{s.name}{s.attempt > 1 ? ` · try ${s.attempt}` : ''}</span>
              <span className={`pill ${s.status}`}>{s.status}</span>
            </div>
            <div className="stage-steps muted">
              {s.startStep !== null ? `steps ${s.startStep}–${s.endStep ?? '…'}` : 'waiting'} · {s.steps} planned
            </div>
            {verdict && (
              <ul className="checks" aria-label={`gate ${verdict.node}`}>
                {verdict.checks.map((c, j) => {
                  const state = gateCheckState(c);
                  return (
                    <li key={j} className={state === 'passed' ? 'pass' : state === 'failed' ? 'fail' : 'vacuous muted'}>
                      {state === 'passed' ? '✓' : state === 'failed' ? '✗' : '–'} <code>{c.metric}</code> {c.value.toPrecision(4)} {c.op} {c.threshold}
                      {state === 'vacuous' && ' (vacuous: no sparse layers)'}
                    </li>
                  );
                })}
                <li className="muted">gate {verdict.passed ? 'passed' : `failed → ${verdict.action}`}</li>
              </ul>
            )}
          </div>
        );
      })}
    </section>
  );
}
