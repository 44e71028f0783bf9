// System samples follow where the engine placed the run: an 'auto' run the engine puts on CUDA
// (its identity message says so) is sampled from the GPU, not the CPU.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { EngineChild } from './engine-host';
import type { EngineToHost, HostToEngine } from './runner/messages';
import { tinyPipeline, writeTinyFixture } from './runner/testing/tiny';

const monitors: { useGpu: boolean; stopped: boolean }[] = [];
vi.mock('./system-monitor', () => ({
  startSystemMonitor: (o: { useGpu: boolean }) => {
    const m = { useGpu: o.useGpu, stopped: false };
    monitors.push(m);
    return () => { m.stopped = true; };
  },
}));
const { RunManager } = await import('./run-manager');

const root = mkdtempSync(join(tmpdir(), 'run-placement-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

class Engine implements EngineChild {
  readonly pid = 4242;
  private onMsg: ((m: EngineToHost) => void) | null = null;
  private onEnd: ((code: number | null, signal: string | null) => void) | null = null;
  send(_m: HostToEngine): void {}
  onMessage(l: (m: EngineToHost) => void): void { this.onMsg = l; }
  onExit(l: (code: number | null, signal: string | null) => void): void { this.onEnd = l; }
  kill(signal: 'SIGTERM' | 'SIGKILL'): void { setImmediate(() => this.onEnd?.(null, signal)); }
  say(m: EngineToHost): void { this.onMsg?.(m); }
}

const identity = (backend: string): EngineToHost => ({ type: 'identity', identity: { engineVersion: 't', threads: 1, backend, modelHash: 'm', dataHash: 'd', simd: 'x' } });

describe('system samples follow the placement', () => {
  const fixture = writeTinyFixture(join(root, 'fixture'));

  it("samples the GPU once an 'auto' run is placed on CUDA, and the CPU when it stays there", async () => {
    const engines: Engine[] = [];
    const manager = new RunManager({ runsDir: join(root, 'runs'), threads: 1, maxRuns: 2, spawn: () => { const e = new Engine(); engines.push(e); return e; } });
    await manager.start(tinyPipeline(fixture), { backend: 'auto' });
    expect(monitors.map((m) => m.useGpu)).toEqual([false]); // before the engine says where it runs
    engines[0].say(identity('cuda'));
    expect(monitors.map((m) => [m.useGpu, m.stopped])).toEqual([[false, true], [true, false]]);

    await manager.start(tinyPipeline(fixture), { backend: 'auto' });
    engines[1].say(identity('cpu'));
    expect(monitors.slice(2).map((m) => [m.useGpu, m.stopped])).toEqual([[false, false]]); // unchanged

    await manager.start(tinyPipeline(fixture), { backend: 'cuda' }); // queued: both slots busy
    await manager.close();
    expect(monitors.every((m) => m.stopped)).toBe(true);
  });
});
