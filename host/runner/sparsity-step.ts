// "Step the sparsity back" (plateau rule) and "roll back sparsity" (gate policy).
// Stepping back keeps the mask family and makes it denser: more random blocks when the mask
// uses random blocks, otherwise a wider sliding window. Rolling back restores the mask each
// layer had before the stage began.
import type { MaskSpec } from '../../core/schema';

/** A denser variant of `mask`: +2 random blocks, or +1 window block when it has no random blocks. */
export function stepBackSparsity(mask: MaskSpec): { mask: MaskSpec; change: string } {
  if (mask.random_blocks > 0) {
    const random_blocks = mask.random_blocks + 2;
    return { mask: { ...mask, random_blocks }, change: `random_blocks ${mask.random_blocks} -> ${random_blocks}` };
  }
  const window_blocks = mask.window_blocks + 1;
  return { mask: { ...mask, window_blocks }, change: `window_blocks ${mask.window_blocks} -> ${window_blocks}` };
}
