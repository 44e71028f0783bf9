// One level denser: the plateau rule's "step the sparsity back" and each retry of the gate
// policy rollback_sparsity. A step keeps the mask family and makes it denser: more random
// blocks when the mask uses random blocks, otherwise a wider sliding window.
//
// Owned by core/: no Node, DOM or Electron imports here.
import type { MaskSpec } from './schema';

/** A denser variant of `mask`: +2 random blocks, or +1 window block when it has no random blocks. */
export function stepBackSparsity(mask: MaskSpec): { mask: MaskSpec; change: string } {
  if (mask.random_blocks > 0) {
    const random_blocks = mask.random_blocks + 2;
    return { mask: { ...mask, random_blocks }, change: `random_blocks ${mask.random_blocks} -> ${random_blocks}` };
  }
  const window_blocks = mask.window_blocks + 1;
  return { mask: { ...mask, window_blocks }, change: `window_blocks ${mask.window_blocks} -> ${window_blocks}` };
}

/** `mask` stepped `levels` levels denser, and the changes made, in order ('' when levels is 0). */
export function denserBy(mask: MaskSpec, levels: number): { mask: MaskSpec; change: string } {
  let out = mask;
  const changes: string[] = [];
  for (let i = 0; i < levels; i++) {
    const step = stepBackSparsity(out);
    out = step.mask;
    changes.push(step.change);
  }
  return { mask: out, change: changes.join(', ') };
}
