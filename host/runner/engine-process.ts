// Engine process entry: the child the engine host forks (node + tsx under the CLI and
// `serve`, Electron's utilityProcess in the app). It receives one 'start' message, runs the
// pipeline on the native engine and streams events back; pause/resume/cancel act between
// optimiser steps. It exits when the run ends; if it dies instead, the host reports a crash.
import type { EngineApi } from '../../native/engine-api';
import { executePipeline, type DatasetLoader, type RunControl } from './executor';
import type { MaskArrays } from './export';
import { buildMask, sparseAddon } from '../../native/mask';
import type { EngineToHost, HostToEngine, StartMessage } from './messages';

/** Messages to the host over whichever channel this process was started with. */
interface ParentPort {
  post(message: EngineToHost): void;
  /** Resolves once the message has left this process (before exiting). */
  postLast(message: EngineToHost): Promise<void>;
  onMessage(listener: (message: HostToEngine) => void): void;
}

function parentPort(): ParentPort {
  // Electron utilityProcess exposes process.parentPort; node's fork exposes process.send.
  const electronPort = (process as unknown as { parentPort?: { postMessage(m: unknown): void; on(e: 'message', l: (e: { data: unknown }) => void): void } }).parentPort;
  if (electronPort) {
    return {
      post: (m) => electronPort.postMessage(m),
      postLast: async (m) => electronPort.postMessage(m),
      onMessage: (l) => electronPort.on('message', (e) => l(e.data as HostToEngine)),
    };
  }
  if (!process.send) throw new Error('engine-process: started without an IPC channel (run it through the engine host)');
  return {
    post: (m) => process.send!(m),
    postLast: (m) => new Promise((resolve) => process.send!(m, undefined, undefined, () => resolve())),
    onMessage: (l) => process.on('message', (m) => l(m as HostToEngine)),
  };
}

class Control implements RunControl {
  cancelled = false;
  private paused = false;
  private wake: (() => void) | null = null;

  pause(): void { this.paused = true; }
  resume(): void { this.paused = false; this.wake?.(); this.wake = null; }
  cancel(): void { this.cancelled = true; this.resume(); }

  waitWhilePaused(): Promise<void> {
    if (!this.paused) return Promise.resolve();
    return new Promise((resolve) => { this.wake = resolve; });
  }
}

async function loadEngine(): Promise<EngineApi> {
  const mod = (await import('../../native/index')) as { engine?: EngineApi; default?: EngineApi };
  const engine = mod.engine ?? mod.default;
  if (!engine) throw new Error('native/index.ts: exports no engine');
  return engine;
}

async function loadDatasetFn(): Promise<DatasetLoader> {
  const mod = (await import('../data/index')) as { loadDataset?: DatasetLoader };
  if (!mod.loadDataset) throw new Error('host/data/index.ts: exports no loadDataset');
  return mod.loadDataset;
}

/**
 * FlexAttention arrays of a layer's static mask (native/mask.ts). Top-k blocks are chosen per
 * input by the selector at run time, so the exported arrays hold the static blocks only.
 */
const flexMaskArrays: MaskArrays = (mask, where) => {
  const built = buildMask({ ...mask, topk_blocks: 0 }, { seq: where.seqLen, heads: where.heads, kvHeads: where.kvHeads, layer: where.layer });
  const f = built.flex;
  return {
    heads: f.heads, qBlocks: f.qBlocks, kvBlocks: f.kvBlocks,
    kv_num_blocks: f.kvNumBlocks, kv_indices: f.kvIndices, q_num_blocks: f.qNumBlocks, q_indices: f.qIndices,
    bitmap: { nMaskHeads: built.nMaskHeads, words: built.bitmap.words, bits: built.bitmap.bits },
  };
};

async function run(port: ParentPort, start: StartMessage, control: Control): Promise<void> {
  const time = () => Date.now();
  try {
    const [engine, loadDataset] = await Promise.all([loadEngine(), loadDatasetFn()]);
    // Load the mask builder's addon now, not at the Export hours later: a rebuild of the addon
    // in between must not fail a finished run. (If it cannot load, Export reports why.)
    try { sparseAddon(); } catch { /* reported by the Export node that needs it */ }
    const outcome = await executePipeline(start.pipeline, {
      runDir: start.runDir, threads: start.threads, backend: start.backend, resume: start.resume, trustedPaths: start.trustedPaths === true,
    }, {
      engine, loadDataset, control, maskArrays: flexMaskArrays,
      emit: (event) => port.post({ type: 'event', event }),
      identify: (identity) => port.post({ type: 'identity', identity }),
      onStageSummary: (summary) => port.post({ type: 'stage_summary', summary }),
    });
    await port.postLast({ type: 'done', status: outcome.status, message: outcome.message, stages: outcome.stages, final: outcome.final, ...(outcome.exported ? { exported: outcome.exported } : {}) });
  } catch (e) {
    const message = (e as Error).message;
    port.post({ type: 'event', event: { type: 'log', time: time(), level: 'error', message } });
    await port.postLast({ type: 'done', status: 'failed', message, stages: [], final: {} });
  }
}

const port = parentPort();
const control = new Control();
let started = false;
port.onMessage((message) => {
  switch (message.type) {
    case 'start':
      if (started) return;
      started = true;
      void run(port, message, control).then(() => process.exit(0));
      break;
    case 'pause': control.pause(); break;
    case 'resume': control.resume(); break;
    case 'cancel': control.cancel(); break;
  }
});
port.post({ type: 'ready' });
