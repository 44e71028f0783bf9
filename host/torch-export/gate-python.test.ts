// The exported trainer's gate semantics (python/train.py) against the studio's (host/runner/gate.ts,
// gate-retry.ts, core/model-state.ts): the same verdicts, and the same retry changes to the
// stage's Replace and Unfreeze nodes, run by /usr/bin/python3 on shared cases.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type { EvalMetrics } from '../../core/events';
import type { GateParams, NodeOf } from '../../core/schema';
import { defaultParams } from '../../core/nodes';
import { initialModelState, nodeEffect, NO_OVERRIDES, type StageOverrides } from '../../core/model-state';
import { judgeGate } from '../runner/gate';
import { planRetry } from '../runner/gate-retry';
import { PYTHON_DIR } from './export';

const PYTHON = '/usr/bin/python3';
const probe = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
const missing = probe.status !== 0 ? `${PYTHON} -c "import torch" failed: ${(probe.stderr || String(probe.error ?? '')).trim().split('\n').pop()}` : null;
if (missing) console.log(`skipping the exported trainer's gate checks: ${missing}`);

const metrics = (sparse: boolean): EvalMetrics => ({
  stage: 0, step: 1, loss: 2.1, ppl: 8, ppl_teacher: 7.9, ppl_ratio: 0.98, attn_kl: sparse ? 0.2 : 0, attn_recall: sparse ? 0.8 : 1,
  logit_kl: 0.01, out_cos: sparse ? 0.97 : 1, density: sparse ? 0.5 : 1, sparsity: sparse ? 0.5 : 0, attn_flops_saved: 0.2, flops_saved: 0.3,
  per_layer: { attn_kl: [null, sparse ? 0.2 : null], attn_recall: [null, sparse ? 0.8 : null], density: [null, sparse ? 0.5 : null] },
});
const gate = (over: Partial<GateParams>): GateParams => ({ checks: [], on_fail: 'stop', max_retries: 2, lr_factor: 0.5, eval_batches: 1, ...over });

function python(script: string, input: unknown): unknown {
  const r = spawnSync(PYTHON, ['-c', `import sys, json; sys.path.insert(0, ${JSON.stringify(PYTHON_DIR)}); import train as T\n${script}`],
    { input: JSON.stringify(input), encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

describe.skipIf(!!missing)('exported trainer: gate semantics as the studio', () => {
  it('judges vacuous checks, retries and the rollback schedule the same way', () => {
    const cases: { params: GateParams; metrics: EvalMetrics; attempt: number }[] = [];
    const checkSets: GateParams['checks'][] = [
      [{ metric: 'out_cos', op: '>', threshold: 0.95 }],
      [{ metric: 'attn_kl', op: '<', threshold: 0.1 }, { metric: 'loss_increase', op: '<=', threshold: 0.05 }],
      [{ metric: 'flops_saved', op: '>=', threshold: 0.25 }, { metric: 'ppl_ratio', op: '>=', threshold: 0.95 }],
    ];
    for (const checks of checkSets) {
      for (const on_fail of ['rollback_sparsity', 'refreeze', 'decay_lr_retry', 'continue', 'stop'] as const) {
        for (const sparse of [true, false]) for (const attempt of [1, 2, 3, 4]) cases.push({ params: gate({ checks, on_fail }), metrics: metrics(sparse), attempt });
      }
    }
    const ts = cases.map((c) => {
      const v = judgeGate(c.params, c.metrics, { stageStartLoss: 2 }, { stage: 0, node: 'g', attempt: c.attempt });
      return { passed: v.passed, action: v.action, states: v.checks.map((k) => k.state) };
    });
    const py = python(`cases = json.load(sys.stdin)
out = []
for c in cases:
    v = T.judge_gate(c["params"], c["metrics"], 2.0, 0, "g", c["attempt"])
    out.append({"passed": v["passed"], "action": v["action"], "states": [k["state"] for k in v["checks"]]})
print(json.dumps(out))`, cases);
    expect(py).toEqual(ts);
  });

  it('makes the same Replace and Unfreeze changes on each retry', () => {
    const state = initialModelState(4);
    state.layers[1].attention = 'sparse';
    state.layers[2].attention = 'sparse';
    const replace: NodeOf<'replace'> = { id: 'r', kind: 'replace', params: { ...defaultParams('replace'), layers: [2, 3] } };
    const unfreeze: NodeOf<'unfreeze'> = { id: 'u', kind: 'unfreeze', params: { layers: [1, 4], kinds: ['q', 'k'], replaced_only: false } };
    const overrides: StageOverrides[] = [];
    for (const [action, attempt] of [['rollback_sparsity', 1], ['rollback_sparsity', 2], ['rollback_sparsity', 3], ['refreeze', 1], ['refreeze', 3]] as const) {
      overrides.push(planRetry(gate({ on_fail: action }), action, attempt, { lrMultiplier: 1, overrides: NO_OVERRIDES }, [0, 3, 2, 1]).overrides);
    }
    const ts = overrides.map((o) => [...nodeEffect(state, replace, o)!.changes, ...nodeEffect(state, unfreeze, o)!.changes]);
    const py = python(`c = json.load(sys.stdin)
out = []
for o in c["overrides"]:
    out.append(T.node_effect(c["state"], c["replace"], o) + T.node_effect(c["state"], c["unfreeze"], o))
print(json.dumps(out))`, { state, replace, unfreeze, overrides });
    expect(py).toEqual(JSON.parse(JSON.stringify(ts)));
  });
});
