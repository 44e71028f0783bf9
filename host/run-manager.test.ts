// RunManager plumbing with a real engine process: a run that fails at once (its model folder
// does not exist) still goes through fork, events, the store, list() and get().
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunManager } from './run-manager';
import type { EngineChild } from './engine-host';
import type { EngineToHost, HostToEngine } from './runner/messages';
import { readRunRecord, RunStore } from './run-store';
import type { RunEvent } from '../core/events';
import { tinyPipeline, writeTinyFixture } from './runner/testing/tiny';

const root = mkdtempSync(join(tmpdir(), 'run-manager-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('RunManager', () => {
  it('records a run that fails in the engine process, then lists and returns it with every event', async () => {
    const fixture = writeTinyFixture(join(root, 'fixture'));
    const pipeline = tinyPipeline(fixture);
    const model = pipeline.nodes.find((n) => n.kind === 'model')!;
    (model.params as { source: string }).source = join(root, 'no-such-model');
    const manager = new RunManager({ runsDir: join(root, 'runs'), threads: 1 });
    const seen: RunEvent[] = [];
    manager.on('event', (e) => seen.push(e));
    const id = await manager.start(pipeline);
    const end = await manager.waitForEnd(id);
    expect(end.status).toBe('failed');
    expect(end.reason).toBe('failed');
    expect(end.message).toBe(`model.source: '${join(root, 'no-such-model')}': ${join(root, 'no-such-model')} is not a directory`);

    const runs = await manager.list();
    expect(runs.map((r) => [r.id, r.status, r.name])).toEqual([[id, 'failed', 'tiny']]);
    const detail = await manager.get(id);
    expect(detail.pipeline.info.name).toBe('tiny');
    expect(detail.events.map((e) => e.type)).toEqual(seen.map((e) => e.type));
    expect(detail.events[detail.events.length - 1]).toMatchObject({ type: 'summary', status: 'failed', runId: id });
    expect(readRunRecord(detail.runDir)).toMatchObject({ status: 'failed', exitReason: 'failed', message: end.message });
  });

  it('refuses an invalid pipeline before creating anything, and unknown run ids', async () => {
    const manager = new RunManager({ runsDir: join(root, 'runs2') });
    await expect(manager.start({ version: 1 } as never)).rejects.toThrow(/^pipeline is invalid: /);
    expect(await manager.list()).toEqual([]);
    await expect(manager.get('nope')).rejects.toThrow(`run 'nope': not found in ${join(root, 'runs2')}`);
    await expect(manager.get('../electron/etc')).rejects.toThrow("run id '../electron/etc' is not valid");
    await expect(manager.pause('nope')).rejects.toThrow("run 'nope' is not running");
  });

  it('marks a run whose hosting process died while it ran as crashed', async () => {
    const fixture = writeTinyFixture(join(root, 'fixture'));
    const runsDir = join(root, 'runs3');
    const store = RunStore.create(runsDir, tinyPipeline(fixture), {
      backend: 'cpu', versions: { studio: 't', node: 'v' }, machine: { platform: 'linux', arch: 'x64', cpus: 1, cpuModel: 'x', totalMemoryBytes: 1 },
    });
    // A pid that cannot exist (above the kernel's pid_max limit of 2^22).
    store.update({ status: 'running', hostPid: 2 ** 22 + 7 });
    store.close();
    const manager = new RunManager({ runsDir });
    const [summary] = await manager.list();
    expect(summary.status).toBe('crashed');
    expect(readRunRecord(store.runDir).message).toMatch(/^interrupted: the process that ran it \(pid 4194311\) exited; resume with --resume /);
  });

  it('fails only the run whose folder cannot be written; the manager and other runs go on', async () => {
    const fixture = writeTinyFixture(join(root, 'fixture'));
    const engines: FakeEngine[] = [];
    const manager = new RunManager({ runsDir: join(root, 'runs4'), threads: 1, maxRuns: 2, spawn: () => { const e = new FakeEngine(); engines.push(e); return e; } });
    const seen: RunEvent[] = [];
    manager.on('event', (e) => seen.push(e));
    const broken = await manager.start(tinyPipeline(fixture));
    const healthy = await manager.start(tinyPipeline(fixture));
    rmSync(join(root, 'runs4', broken), { recursive: true }); // the folder is gone mid-run
    // A stage boundary flushes at once; the write fails inside the engine's message handler.
    engines[0].say({ type: 'event', event: { type: 'stage_start', time: 1, stage: 0, name: 's', totalSteps: 1 } as never });
    const end = await manager.waitForEnd(broken);
    expect(end.status).toBe('failed');
    expect(end.message).toMatch(new RegExp(`^cannot write to the run folder ${join(root, 'runs4', broken)}: ENOENT`));
    expect(seen.some((e) => e.runId === broken && e.type === 'log' && e.level === 'error' && /cannot write/.test(e.message))).toBe(true);
    // The other run still records and finishes.
    engines[1].say({ type: 'done', status: 'completed', stages: [], final: {} });
    engines[1].exit();
    expect((await manager.waitForEnd(healthy)).status).toBe('completed');
    expect(readRunRecord(join(root, 'runs4', healthy)).status).toBe('completed');
    expect((await manager.list()).map((r) => r.id)).toEqual([healthy]);
  });
});

describe('RunManager: run slots', () => {
  it('queues runs beyond maxRuns, starts them in order as slots free, and cancels a queued one without an engine', async () => {
    const fixture = writeTinyFixture(join(root, 'fixture'));
    const engines: FakeEngine[] = [];
    const runsDir = join(root, 'runs5');
    const manager = new RunManager({ runsDir, threads: 1, maxRuns: 1, spawn: () => { const e = new FakeEngine(); engines.push(e); return e; } });
    const statuses: string[] = [];
    manager.on('event', (e) => { if (e.type === 'status') statuses.push(`${e.runId}:${e.status}`); });
    const first = await manager.start(tinyPipeline(fixture));
    const second = await manager.start(tinyPipeline(fixture));
    const third = await manager.start(tinyPipeline(fixture));
    expect(engines).toHaveLength(1);
    const byId = async () => Object.fromEntries((await manager.list()).map((r) => [r.id, r.status]));
    expect(await byId()).toEqual({ [first]: 'running', [second]: 'queued', [third]: 'queued' });
    expect(readRunRecord(join(runsDir, second)).status).toBe('queued');

    await manager.cancel(third);
    expect((await manager.waitForEnd(third)).status).toBe('cancelled');
    expect(readRunRecord(join(runsDir, third))).toMatchObject({ status: 'cancelled', message: 'cancelled before it started' });
    await manager.pause(second); // a queued run has nothing to pause
    expect((await byId())[second]).toBe('queued');

    engines[0].say({ type: 'done', status: 'completed', stages: [], final: {} });
    engines[0].exit();
    expect((await manager.waitForEnd(first)).status).toBe('completed');
    await new Promise((r) => setImmediate(r));
    expect(engines).toHaveLength(2); // the freed slot went to the oldest queued run
    expect(engines[1].sent[0]).toMatchObject({ type: 'start', runDir: join(runsDir, second) });
    expect((await byId())[second]).toBe('running');
    engines[1].say({ type: 'done', status: 'completed', stages: [], final: {} });
    engines[1].exit();
    expect((await manager.waitForEnd(second)).status).toBe('completed');
    expect(statuses).toEqual([`${first}:running`, `${second}:queued`, `${third}:queued`, `${third}:cancelled`, `${first}:completed`, `${second}:running`, `${second}:completed`]);
  });

  it('refuses a slot count that is not a positive integer', () => {
    expect(() => new RunManager({ runsDir: join(root, 'runs6'), maxRuns: 0 })).toThrow('maxRuns must be a positive integer, got 0');
  });
});

/** An engine process stand-in the test drives by hand (no child process). */
class FakeEngine implements EngineChild {
  readonly pid = undefined;
  readonly sent: HostToEngine[] = [];
  private onMsg: ((m: EngineToHost) => void) | null = null;
  private onEnd: ((code: number | null, signal: string | null) => void) | null = null;
  send(message: HostToEngine): void { this.sent.push(message); }
  onMessage(listener: (m: EngineToHost) => void): void { this.onMsg = listener; }
  onExit(listener: (code: number | null, signal: string | null) => void): void { this.onEnd = listener; }
  kill(signal: 'SIGTERM' | 'SIGKILL'): void { setImmediate(() => this.onEnd?.(null, signal)); }
  say(message: EngineToHost): void { this.onMsg?.(message); }
  exit(): void { setImmediate(() => this.onEnd?.(0, null)); }
}
