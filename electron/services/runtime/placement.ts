// Where a run computes: the backend (auto picks CUDA when the engine has a usable GPU) and the
// precision, chosen once per run because one model serves every stage. The first Train node's
// precision decides; a later stage asking for another is told so in its log line.
import type { BackendChoice, BackendInfo, Precision } from '../../../native/engine-api';

export function choosePlacement(requested: string, cudaAvailable: boolean, precisions: Precision[]): BackendChoice {
  const useCuda = requested === 'cuda' || (requested === 'auto' && cudaAvailable);
  if (!useCuda) return { backend: 'cpu', precision: 'fp32' };
  return { backend: 'cuda', precision: precisions[0] ?? 'bf16' };
}

/** The log line a stage prints about its precision. */
export function precisionNote(trainId: string, requested: Precision, backend: BackendInfo): string {
  if (backend.name === 'cpu') {
    return requested === 'fp32' ? `${trainId}: precision fp32 on the cpu backend`
      : `${trainId}: precision ${requested} requested; computed in fp32 on the cpu backend`;
  }
  const where = `on cuda (${backend.device})`;
  if (requested === backend.precision) return `${trainId}: precision ${requested} ${where}`;
  return `${trainId}: precision ${requested} requested; this run computes in ${backend.precision} ${where} (the first Train node sets the run's precision)`;
}
