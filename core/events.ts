// Run events: what the engine process emits, the run store keeps (events.jsonl,
// metrics.jsonl) and the renderer draws. Metric names and definitions: docs/metrics.md.

/** queued: waiting for a free run slot (the run manager starts at most N engines at once). */
export type RunStatus = 'pending' | 'queued' | 'running' | 'paused' | 'completed' | 'failed' | 'cancelled' | 'crashed';

/** Per-layer numbers; index i is 0-based layer i (null where not applicable, e.g. dense layers). */
export type PerLayer = (number | null)[];

export interface StepMetrics {
  stage: number;           // 0-based stage index
  step: number;            // global step across stages (monotonic)
  stage_step: number;      // step within the stage
  loss: number;            // total weighted loss
  task_loss: number;       // next-token cross-entropy (nats)
  attn_kl_loss: number;    // weighted term's raw value (0 when unused)
  logit_kl_loss: number;
  hidden_mse_loss: number;
  lr: number;
  grad_norm: number;       // before clipping
  tokens: number;          // tokens in this step
  density: number;         // mean kept causal block-pair share over replaced layers (1 if none)
  seq_len: number;
  /** Steps that trained an indexer only: its KL, the unweighted term inside `loss`. */
  indexer_loss?: number;
  /** With indexer_loss, per 0-based layer: 1 warm-up KL, 2 selected-set KL, null no trained indexer. */
  indexer_phase?: PerLayer;
  // Mixture-of-experts models only (absent on dense models); docs/metrics.md "Mixture of experts".
  aux_loss?: number;           // transformers' load-balancing auxiliary loss, unweighted
  load_balance_loss?: number;  // the load-balancing term added to loss (weight included; 0 without one)
  expert_usage_min?: number;   // min over MoE layers and experts of E * usage share (1 = uniform)
  expert_usage_max?: number;   // max of the same
  routing_entropy?: number;    // mean over MoE layers of the router's mean softmax entropy (nats)
  /** Train nodes with attn_entropy_weight > 0 only: mean entropy (nats) of the model's attention, the unweighted term inside `loss`. */
  attn_entropy?: number;
}

export interface EvalMetrics {
  stage: number;
  step: number;
  loss: number;            // student validation cross-entropy
  ppl: number;             // student perplexity
  ppl_teacher: number;
  ppl_ratio: number;       // ppl_teacher / ppl
  attn_kl: number;         // mean over replaced layers, heads, query positions
  attn_recall: number;
  logit_kl: number;
  out_cos: number;
  density: number;
  sparsity: number;
  attn_flops_saved: number; // whole model: share of causal attention block pairs skipped (dense layers skip none)
  /** Whole model: share of causal attention token-pair dot products skipped (the engine's count). Absent in runs recorded before it existed. */
  flops_saved?: number;
  /** flops_saved: per layer, absent in runs recorded before it existed. */
  per_layer: {
    attn_kl: PerLayer; attn_recall: PerLayer; density: PerLayer; flops_saved?: PerLayer;
    /** MoE models: per layer the share of routed token-slots per expert (null for dense-MLP layers). */
    expert_usage?: (number[] | null)[];
    /** MoE models: per layer the router's mean softmax entropy, nats (null for dense-MLP layers). */
    routing_entropy?: PerLayer;
  };
  // Mixture-of-experts models only (absent on dense models), as in StepMetrics.
  aux_loss?: number;
  expert_usage_min?: number;
  expert_usage_max?: number;
  routing_entropy?: number;
}

/**
 * A gate check's outcome. 'vacuous': the metric measures nothing on this model (attn_kl,
 * attn_recall or out_cos while no layer is sparse): not a pass (`passed` is false), so the
 * gate's verdict does not pass either.
 */
export type GateCheckState = 'passed' | 'failed' | 'vacuous';

export interface GateCheckResult {
  metric: string; op: string; threshold: number; value: number;
  /** True only for state 'passed'. */
  passed: boolean;
  /** Absent in events written before vacuous checks existed (read: passed ? 'passed' : 'failed'). */
  state?: GateCheckState;
}

/** A check's state, also for events without `state`. */
export function gateCheckState(check: GateCheckResult): GateCheckState {
  return check.state ?? (check.passed ? 'passed' : 'failed');
}

export interface GateVerdict {
  stage: number;
  node: string;
  /** Every check passed: a vacuous check is not a pass, so a gate with one does not pass. */
  passed: boolean;
  checks: GateCheckResult[];
  action: 'none' | 'rollback_sparsity' | 'decay_lr_retry' | 'refreeze' | 'stop' | 'continue';
  attempt: number;
}

export interface SystemSample {
  /** 'gpu' when NVML reports a device in use, else 'cpu'. */
  source: 'cpu' | 'gpu';
  utilization: number;     // percent 0-100
  memory_bytes: number;    // RSS (cpu) or device memory used (gpu)
  memory_total_bytes?: number;
  power_watts?: number;
  temperature_c?: number;
  /** GPU samples: every device NVML (or nvidia-smi) reports, by index; the fields above are the first one's. */
  devices?: GpuDeviceSample[];
}

/** One GPU in a system sample. */
export interface GpuDeviceSample {
  index: number;
  name?: string;
  utilization: number;     // percent 0-100
  memory_bytes: number;    // device memory used
  memory_total_bytes?: number;
  power_watts?: number;
  temperature_c?: number;
}

/** Every event carries the run id and a wall-clock time (ms since epoch, not part of metrics). */
export type RunEvent = { runId: string; time: number } & (
  | { type: 'status'; status: RunStatus; message?: string }
  | { type: 'stage_start'; stage: number; node: string; name: string; steps: number }
  | { type: 'stage_end'; stage: number; node: string; status: 'passed' | 'failed' | 'done' | 'cancelled' }
  | { type: 'step'; metrics: StepMetrics }
  | { type: 'eval'; metrics: EvalMetrics }
  | { type: 'gate'; verdict: GateVerdict }
  | { type: 'checkpoint'; stage: number; path: string }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; message: string }
  | { type: 'system'; sample: SystemSample }
  | { type: 'summary'; status: RunStatus; runDir: string; stages: StageSummary[]; final: Partial<EvalMetrics> }
);

export interface StageSummary {
  stage: number;
  node: string;
  name: string;
  status: 'passed' | 'failed' | 'done' | 'skipped' | 'cancelled';
  attempts: number;
  metrics: Partial<EvalMetrics>;
  /**
   * Measured prefill speed-up of its last attempt (dense / sparse time of the student at the
   * stage's longest sequence, same process); wall-clock, so never in metrics.jsonl. Absent when
   * the engine cannot time prefill.
   */
  prefill?: { seq: number; batch: number; dense_ms: number; sparse_ms: number; speedup: number };
}

export type RunEventType = RunEvent['type'];
