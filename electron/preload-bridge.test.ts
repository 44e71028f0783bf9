import { describe, expect, it } from 'vitest';
import { FILE_METHODS, STUDIO_METHODS } from '../core/api';
import { IPC_EVENT, IPC_MENU } from '../core/transport';
import { buildStudioBridge, type BridgeIo } from './preload-bridge';

function recordingIo(answer: (payload: { method: string; args: unknown[] }) => unknown) {
  const calls: { method: string; args: unknown[] }[] = [];
  const listeners = new Map<string, Set<(payload: unknown) => void>>();
  const io: BridgeIo = {
    async invoke(payload) {
      calls.push(payload);
      try { return { ok: true, result: await answer(payload) }; } catch (e) { return { ok: false, error: { message: (e as Error).message, code: 'x' } }; }
    },
    subscribe(channel, listener) {
      if (!listeners.has(channel)) listeners.set(channel, new Set());
      listeners.get(channel)!.add(listener);
      return () => listeners.get(channel)!.delete(listener);
    },
  };
  const emit = (channel: string, payload: unknown) => listeners.get(channel)?.forEach((l) => l(payload));
  return { io, calls, emit, listeners };
}

describe('buildStudioBridge', () => {
  it('exposes exactly the StudioApi methods and subscriptions, frozen', () => {
    const bridge = buildStudioBridge(recordingIo(() => null).io);
    expect(Object.keys(bridge).sort()).toEqual([...STUDIO_METHODS, ...FILE_METHODS, 'onMenuCommand', 'onRunEvent'].sort());
    expect(Object.isFrozen(bridge)).toBe(true);
    expect(Object.values(bridge).every((v) => typeof v === 'function')).toBe(true);
  });

  it('forwards each method with its name and arguments and returns the result', async () => {
    const { io, calls } = recordingIo(({ method, args }) => ({ method, args }));
    const bridge = buildStudioBridge(io);
    expect(await bridge.getTemplate('quick-demo')).toEqual({ method: 'getTemplate', args: ['quick-demo'] });
    await bridge.listRuns();
    await bridge.startRun({ version: 1 } as never, { backend: 'cpu' });
    expect(calls.map((c) => c.method)).toEqual(['getTemplate', 'listRuns', 'startRun']);
    expect(calls[2].args).toEqual([{ version: 1 }, { backend: 'cpu' }]);
  });

  it('turns a failed outcome into an Error with the service message and code', async () => {
    const bridge = buildStudioBridge(recordingIo(() => { throw new Error('template "nope" not found'); }).io);
    await expect(bridge.getTemplate('nope')).rejects.toMatchObject({ message: 'template "nope" not found', code: 'x' });
  });

  it('delivers run events and menu commands until unsubscribed', () => {
    const { io, emit } = recordingIo(() => null);
    const bridge = buildStudioBridge(io);
    const events: unknown[] = [];
    const commands: unknown[] = [];
    const off = bridge.onRunEvent((e) => events.push(e));
    bridge.onMenuCommand!((c) => commands.push(c));
    emit(IPC_EVENT, { runId: 'r1', type: 'log' });
    emit(IPC_MENU, 'open-pipeline');
    off();
    emit(IPC_EVENT, { runId: 'r1', type: 'log' });
    expect(events).toEqual([{ runId: 'r1', type: 'log' }]);
    expect(commands).toEqual(['open-pipeline']);
  });
});
