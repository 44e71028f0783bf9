// A synthetic run for the UI bench: `steps` step events (every step series gets one point per
// step), an eval every `evalEvery` steps with per-layer numbers, three stages. Deterministic.
import type { RunEvent } from '../../../core/events';

export function syntheticRun(steps: number, evalEvery = 100, layers = 12, runId = 'bench'): RunEvent[] {
  const events: RunEvent[] = [];
  const t0 = 1_700_000_000_000;
  const stageLen = Math.ceil(steps / 3);
  let seed = 12345;
  const rand = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x7fffffff; };
  events.push({ runId, time: t0, type: 'status', status: 'running' });
  for (let step = 0; step < steps; step++) {
    const stage = Math.min(2, Math.floor(step / stageLen));
    const time = t0 + step * 50;
    if (step % stageLen === 0) {
      if (stage > 0) events.push({ runId, time, type: 'stage_end', stage: stage - 1, node: `train-${stage}`, status: 'passed' });
      events.push({ runId, time, type: 'stage_start', stage, node: `train-${stage + 1}`, name: ['foundation', 'expansion', 'optimisation'][stage], steps: stageLen });
    }
    const base = 6 * Math.exp(-step / (steps / 4)) + 2;
    const noise = (rand() - 0.5) * 0.4 + (rand() < 0.001 ? 3 : 0);
    events.push({ runId, time, type: 'step', metrics: {
      stage, step, stage_step: step % stageLen, loss: base + noise, task_loss: base * 0.8 + noise, attn_kl_loss: 0.3 * Math.exp(-step / steps) + rand() * 0.02,
      logit_kl_loss: 0.2 + rand() * 0.05, hidden_mse_loss: 0.1 + rand() * 0.01, lr: 1e-4 * (1 - 0.2 * stage) * (0.5 + 0.5 * Math.cos((Math.PI * (step % stageLen)) / stageLen)),
      grad_norm: 1 + rand() * 0.5, tokens: 1024, density: 0.6 - 0.1 * stage, seq_len: 256,
    } });
    if ((step + 1) % evalEvery === 0) {
      const kl = Array.from({ length: layers }, (_, l) => (l < 3 ? null : 0.05 + 0.02 * Math.sin(step / 1000 + l) + rand() * 0.01));
      const density = Array.from({ length: layers }, (_, l) => (l < 3 ? null : 0.6 - 0.1 * stage - 0.01 * l));
      events.push({ runId, time: time + 1, type: 'eval', metrics: {
        stage, step, loss: base, ppl: Math.exp(base), ppl_teacher: Math.exp(base * 0.98), ppl_ratio: 0.95 + rand() * 0.03, attn_kl: 0.06 + rand() * 0.01,
        attn_recall: 0.9 + rand() * 0.02, logit_kl: 0.1, out_cos: 0.97, density: 0.6 - 0.1 * stage, sparsity: 0.4 + 0.1 * stage, attn_flops_saved: 0.35 + 0.1 * stage,
        per_layer: { attn_kl: kl, attn_recall: kl.map((v) => (v === null ? null : 1 - v)), density },
      } });
      events.push({ runId, time: time + 2, type: 'system', sample: { source: 'cpu', utilization: 70 + rand() * 25, memory_bytes: (900 + rand() * 50) * 2 ** 20 } });
    }
  }
  return events;
}
