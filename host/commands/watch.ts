// `sparse-studio watch RUN_DIR [--json]`: follows a run folder another process writes (for
// example a PyTorch export's train.py) and prints the live lines of `run`: stage starts, steps,
// evaluations, gates, stage ends, then the stage table once the run's summary arrives.
// Exit codes: 0 the run completed, 1 it ended otherwise, 2 bad usage or not a run folder.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { RunEvent, StageSummary } from '../../core/events';
import { checkMark } from '../runner/gate';
import { RunFollower } from '../run-follow';

const USAGE = 'usage: sparse-studio watch RUN_DIR [--json]';

function f(x: number | undefined): string {
  return x === undefined || x === null ? '-' : Number.isFinite(x) ? x.toFixed(4) : String(x);
}

/** The text line of one event (null: nothing to print), as `run` prints it. */
export function watchLine(event: RunEvent): string | null {
  switch (event.type) {
    case 'stage_start': return `stage ${event.stage + 1} ${event.name}: ${event.steps} steps`;
    case 'step': {
      const m = event.metrics;
      return `  step ${m.step} (stage step ${m.stage_step}): loss ${f(m.loss)} task ${f(m.task_loss)} attn_kl ${f(m.attn_kl_loss)} lr ${m.lr.toExponential(2)} grad_norm ${f(m.grad_norm)} density ${f(m.density)}`;
    }
    case 'eval': return `  eval @${event.metrics.step}: loss ${f(event.metrics.loss)} ppl_ratio ${f(event.metrics.ppl_ratio)} attn_kl ${f(event.metrics.attn_kl)} out_cos ${f(event.metrics.out_cos)} density ${f(event.metrics.density)}`;
    case 'gate': {
      const v = event.verdict;
      const checks = v.checks.map((c) => `${c.metric} ${f(c.value)} ${c.op} ${c.threshold} ${checkMark(c)}`).join(', ');
      return `  gate ${v.node} (attempt ${v.attempt}): ${v.passed ? 'passed' : `failed -> ${v.action}`}: ${checks}`;
    }
    case 'stage_end': return `  stage ${event.stage + 1} ${event.status}`;
    case 'log': return event.level === 'info' ? null : `  ${event.level}: ${event.message}`;
    case 'summary': {
      const rows = event.stages.map((s: StageSummary) => [String(s.stage + 1), s.name, s.status, String(s.attempts), f(s.metrics.attn_kl), f(s.metrics.out_cos), f(s.metrics.ppl_ratio), f(s.metrics.density), f(s.metrics.flops_saved), f(s.prefill?.speedup)]);
      const head = ['#', 'stage', 'status', 'tries', 'attn_kl', 'out_cos', 'ppl_ratio', 'density', 'flops_saved', 'speedup'];
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
      const fmtRow = (r: string[]) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
      return [fmtRow(head), ...rows.map(fmtRow), `run ${event.status}`, `run directory: ${event.runDir}`].join('\n');
    }
    default: return null;
  }
}

export async function run(args: string[]): Promise<number> {
  const json = args.includes('--json');
  const rest = args.filter((a) => a !== '--json');
  const bad = rest.find((a) => a.startsWith('-'));
  if (bad || rest.length !== 1) {
    console.error(`sparse-studio watch: ${bad ? `unknown argument "${bad}"` : rest.length ? 'only one RUN_DIR' : 'missing RUN_DIR'}`);
    console.error(USAGE);
    return 2;
  }
  const dir = rest[0];
  if (!existsSync(join(dir, 'events.jsonl')) && !existsSync(join(dir, 'run.json'))) {
    console.error(`sparse-studio watch: ${dir}: not a run folder (no events.jsonl or run.json yet)`);
    return 2;
  }
  const follower = new RunFollower(dir);
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.on('SIGINT', onSigint);
  let status = '';
  try {
    await follower.follow((event) => {
      if (event.type === 'summary') status = event.status;
      if (json) { process.stdout.write(JSON.stringify(event) + '\n'); return; }
      const line = watchLine(event);
      if (line !== null) console.log(line);
    }, { signal: abort.signal });
  } finally {
    process.off('SIGINT', onSigint);
  }
  return status === 'completed' ? 0 : abort.signal.aborted ? 130 : 1;
}
