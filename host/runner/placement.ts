// Where a run computes: the backend (auto picks CUDA when the engine has a usable GPU and the
// pipeline's masks and loss terms suit it), chosen once per run because one model serves every
// stage, and the precision the model starts at (the first Train node's). Each stage then asks the
// engine for its own precision (EngineModel.setPrecision) and logs what the engine computes in: a
// GPU honours each stage's; the CPU computes every stage in fp32 and says so once, at the run's start.
import { ATTN_ENTROPY_CPU_ONLY } from '../../core/nodes';
import type { NodeOf, Pipeline, SelectorKind } from '../../core/schema';
import type { BackendChoice, BackendInfo, Precision } from '../../native/engine-api';

/** Mask block sizes the CUDA attention kernels take (tiles of 64 tokens). */
export const CUDA_BLOCK_SIZES: readonly number[] = [64, 128];

export interface PlacementInput {
  requested: string;
  cudaAvailable: boolean;
  /** Train nodes' precisions, in execution order. */
  precisions: Precision[];
  /** Every block-sparse mask the pipeline sets, with the node that sets it. */
  masks: { node: string; blockSize: number; selector?: SelectorKind }[];
  /** Train nodes with the attention-entropy term on (it runs on the cpu only). */
  entropyTrains?: string[];
}

/** Every block-sparse mask a pipeline sets (its Replace nodes). */
export function pipelineMasks(pipeline: Pipeline): PlacementInput['masks'] {
  return pipeline.nodes.filter((n): n is NodeOf<'replace'> => n.kind === 'replace').map((n) => ({ node: n.id, blockSize: n.params.mask.block_size, selector: n.params.mask.selector }));
}

/** Why the CUDA kernels cannot run these masks, naming the node; undefined when they can. */
export function cudaMaskProblem(masks: PlacementInput['masks']): string | undefined {
  const perToken = masks.find((m) => m.selector === 'infllm_v2');
  if (perToken) return `${perToken.node}.mask.selector is infllm_v2, whose per-token attention runs on the cpu only`;
  const unsuited = masks.find((m) => !CUDA_BLOCK_SIZES.includes(m.blockSize));
  return unsuited && `${unsuited.node}.mask.block_size is ${unsuited.blockSize}; the CUDA attention kernels take ${CUDA_BLOCK_SIZES.join(' or ')}`;
}

/** Train nodes whose attn_entropy_weight is on. */
export function entropyTrains(pipeline: Pipeline): string[] {
  return pipeline.nodes.filter((n): n is NodeOf<'train'> => n.kind === 'train' && (n.params.attn_entropy_weight ?? 0) > 0).map((n) => n.id);
}

/** Why CUDA cannot run this pipeline (its masks, or a loss term only the cpu computes), naming the node; undefined when it can. */
export function cudaPipelineProblem(input: Pick<PlacementInput, 'masks' | 'entropyTrains'>): string | undefined {
  const entropy = input.entropyTrains?.[0];
  return cudaMaskProblem(input.masks) ?? (entropy && `${entropy}.attn_entropy_weight is on: ${ATTN_ENTROPY_CPU_ONLY.toLowerCase()}`);
}

/** The run's backend and starting precision, and a line to log when auto had to stay on the CPU. */
export function choosePlacement(input: PlacementInput): { placement: BackendChoice; note?: string } {
  const why = cudaPipelineProblem(input);
  if (input.requested === 'cuda' && why) throw new Error(`backend: cuda cannot run this pipeline: ${why} (run it with --backend cpu)`);
  const useCuda = input.requested === 'cuda' || (input.requested === 'auto' && input.cudaAvailable && !why);
  if (!useCuda) {
    const note = input.requested === 'auto' && input.cudaAvailable && why ? `backend: auto stays on the cpu: ${why}` : undefined;
    return { placement: { backend: 'cpu', precision: 'fp32' }, note };
  }
  return { placement: { backend: 'cuda', precision: input.precisions[0] ?? 'bf16' } };
}

/** The one line a cpu run logs about precision: the cpu computes in fp32 whatever a Train node asks. */
export function cpuPrecisionNote(trains: { id: string; params: { precision: Precision } }[]): string {
  const other = trains.filter((t) => t.params.precision !== 'fp32').map((t) => `${t.id} ${t.params.precision}`);
  return `precision: the cpu backend computes every stage in fp32${other.length ? ` (asked: ${other.join(', ')})` : ''}`;
}

/** The log line a stage prints about its precision: what it asked for and what the engine (`backend`, read after the request) computes in. */
export function precisionNote(trainId: string, requested: Precision, backend: BackendInfo): string {
  if (backend.name === 'cpu') {
    return requested === 'fp32' ? `${trainId}: precision fp32 on the cpu backend`
      : `${trainId}: precision ${requested} requested; computed in fp32 on the cpu backend`;
  }
  const where = `on cuda (${backend.device})`;
  if (requested === backend.precision) return `${trainId}: precision ${requested} ${where}`;
  return `${trainId}: precision ${requested} requested; the engine computes in ${backend.precision} ${where}`;
}
