// The host against real child processes: small scripts that play the engine's side of the
// protocol (completing, crashing, ignoring cancel), so exits are classified from real signals.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineHost, forkEngine } from './engine-host';
import type { EngineToHost } from './runner/messages';

const dir = mkdtempSync(join(tmpdir(), 'engine-host-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function script(name: string, body: string): string {
  const file = join(dir, `${name}.mjs`);
  writeFileSync(file, body);
  return file;
}

const start = { pipeline: {} as never, runDir: dir, backend: 'cpu' as const, threads: 1 };

describe('EngineHost', () => {
  it('reports completed from the engine\'s done message and relays events in order', async () => {
    const file = script('ok', `
      process.on('message', (m) => {
        if (m.type !== 'start') return;
        for (let i = 0; i < 3; i++) process.send({ type: 'event', event: { type: 'log', time: i, level: 'info', message: 'line ' + i } });
        process.send({ type: 'done', status: 'completed', stages: [], final: {} }, () => process.exit(0));
      });`);
    const host = new EngineHost(() => forkEngine(file));
    const seen: EngineToHost[] = [];
    host.on('message', (m) => seen.push(m));
    host.start(start);
    const exit = await host.exited;
    expect(exit.reason).toBe('completed');
    expect(seen.filter((m) => m.type === 'event').map((m) => (m as { event: { message: string } }).event.message)).toEqual(['line 0', 'line 1', 'line 2']);
  });

  it('marks a process that exits without done as crashed, with its last stderr line', async () => {
    const file = script('crash', `process.on('message', () => { console.error('kernel exploded at layer 3'); setTimeout(() => process.exit(7), 20); });`);
    const host = new EngineHost(() => forkEngine(file));
    host.start(start);
    const exit = await host.exited;
    expect(exit).toMatchObject({ reason: 'crashed', code: 7 });
    expect(exit.message).toBe('engine process exited with code 7: kernel exploded at layer 3');
  });

  it('classifies an allocation failure as oom', async () => {
    const file = script('oom', `process.on('message', () => { console.error('terminate called after throwing an instance of std::bad_alloc'); setTimeout(() => process.abort(), 20); });`);
    const host = new EngineHost(() => forkEngine(file));
    host.start(start);
    const exit = await host.exited;
    expect(exit.reason).toBe('oom');
    expect(exit.signal).toBe('SIGABRT');
  });

  it('reports an engine killed from outside as crashed by signal', async () => {
    const file = script('hang', `process.on('message', () => {}); setInterval(() => {}, 1000);`);
    const host = new EngineHost(() => forkEngine(file));
    host.start(start);
    await new Promise((r) => setTimeout(r, 200));
    process.kill(host.pid!, 'SIGKILL');
    const exit = await host.exited;
    expect(exit).toMatchObject({ reason: 'crashed', signal: 'SIGKILL' });
    expect(exit.message).toContain('killed by SIGKILL');
  });

  it('escalates cancel to SIGKILL when the engine does not stop, and calls it cancelled', async () => {
    const file = script('stubborn', `process.on('message', () => {}); setInterval(() => {}, 1000);`);
    const host = new EngineHost(() => forkEngine(file), 300);
    host.start(start);
    const t0 = Date.now();
    host.cancel();
    const exit = await host.exited;
    expect(exit).toMatchObject({ reason: 'cancelled', signal: 'SIGKILL' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
  });
});
