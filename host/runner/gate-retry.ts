// What the next attempt of a stage changes after its gate failed (docs/method.md, "Gates").
// Every retry restores the stage start (weights, optimiser, masks) and then:
// - decay_lr_retry: multiplies the stage's LR by lr_factor once more;
// - rollback_sparsity: retry k applies the stage's Replace masks k levels denser (the plateau
//   rule's step, core/sparsity-step.ts); after max_retries such retries the stage runs once
//   more with its layers on their previous masks (its Replace nodes skipped);
// - refreeze: retry k leaves the k deepest layers the stage's Unfreeze nodes unfroze frozen
//   (one layer per retry, deepest first).
import type { GateParams } from '../../core/schema';
import { describeLayers, type StageOverrides } from '../../core/model-state';
import { rollbackStep } from './gate';

export type RetryAction = 'rollback_sparsity' | 'decay_lr_retry' | 'refreeze';

export interface RetryPlan {
  lrMultiplier: number;
  overrides: StageOverrides;
  /** The rest of the run-log line after "gate failed (...); ". */
  description: string;
}

/**
 * The plan for the attempt after failed attempt `attempt` (1-based). `unfrozen`: 0-based layers
 * the stage's Unfreeze nodes unfroze on its first attempt.
 */
export function planRetry(gate: GateParams, action: RetryAction, attempt: number,
  current: { lrMultiplier: number; overrides: StageOverrides }, unfrozen: readonly number[]): RetryPlan {
  const retry = `retry ${attempt} of ${gate.max_retries}`;
  switch (action) {
    case 'decay_lr_retry': {
      const lrMultiplier = current.lrMultiplier * gate.lr_factor;
      return { lrMultiplier, overrides: current.overrides, description: `restoring the stage start and retraining with LR x${fmt(lrMultiplier)}, ${retry}` };
    }
    case 'rollback_sparsity': {
      const step = rollbackStep(attempt, gate.max_retries);
      if (step === 'previous_masks') {
        return {
          lrMultiplier: current.lrMultiplier, overrides: { ...current.overrides, denserLevels: 0, skipReplace: true },
          description: `${gate.max_retries} retr${gate.max_retries === 1 ? 'y' : 'ies'} with denser masks did not pass either: ` +
            'the stage returns to its previous masks (its Replace nodes are skipped, their layers keep the attention they had before the stage) and retrains once more; ' +
            'if the gate still does not pass, the stage is marked failed and the run goes on',
        };
      }
      return {
        lrMultiplier: current.lrMultiplier, overrides: { ...current.overrides, denserLevels: step.levels, skipReplace: false },
        description: `restoring the stage start with the stage's masks ${step.levels} level${step.levels > 1 ? 's' : ''} denser than its Replace nodes set, retraining, ${retry}`,
      };
    }
    case 'refreeze': {
      const deepestFirst = [...unfrozen].sort((a, b) => b - a);
      if (deepestFirst.length === 0) {
        return { lrMultiplier: current.lrMultiplier, overrides: current.overrides, description: `the stage unfroze no layer, so there is nothing to refreeze; retraining as before, ${retry}` };
      }
      const refrozen = deepestFirst.slice(0, Math.min(attempt, deepestFirst.length));
      return {
        lrMultiplier: current.lrMultiplier, overrides: { ...current.overrides, refrozen },
        description: `restoring the stage start with ${describeLayers(refrozen)} frozen again (deepest first, ${refrozen.length} of the ${deepestFirst.length} layers the stage unfroze), retraining, ${retry}`,
      };
    }
  }
}

function fmt(x: number): string {
  return Number.isFinite(x) ? Number(x.toPrecision(4)).toString() : String(x);
}
