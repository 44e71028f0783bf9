// Sequence-length curriculum: the entry with the largest from_step <= step applies.
import type { CurriculumStep } from '../../core/schema';

export function seqLenAt(curriculum: CurriculumStep[], stageStep: number): number {
  if (curriculum.length === 0) throw new Error('curriculum: needs at least one entry');
  let seq = curriculum[0].seq_len;
  for (const entry of curriculum) if (entry.from_step <= stageStep) seq = entry.seq_len;
  return seq;
}

/** The longest sequence the stage will use (sizes evaluation batches and memory estimates). */
export function maxSeqLen(curriculum: CurriculumStep[]): number {
  return curriculum.reduce((m, c) => Math.max(m, c.seq_len), 0);
}
