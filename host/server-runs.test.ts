// A real run driven over the `serve` WebSocket: the tiny 2-layer pipeline of the runtime tests
// on the real engine. Checks that run events reach the socket in order and that the run is
// then listed and readable through the same API.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { RunEvent } from '../core/events';
import { engineAvailable } from '../native/index';
import { tinyPipeline, writeTinyFixture } from './runner/testing/tiny';
import { newToken, startServer } from './server';
import { createStudioService } from './studio-service';

const root = mkdtempSync(join(tmpdir(), 'server-runs-'));
process.env.SPARSE_STUDIO_CACHE ??= join(root, 'cache');
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe.skipIf(!engineAvailable())('serve: a real run over the socket', () => {
  it('streams the run events to the page and lists the finished run', async () => {
    const fixture = writeTinyFixture(join(root, 'fixture'));
    const rendererDir = join(root, 'renderer');
    const service = createStudioService({ runsDir: join(root, 'runs'), templatesDir: join(__dirname, '../templates') });
    const token = newToken();
    const server = await startServer({ host: '127.0.0.1', port: 0, token, rendererDir, api: service });
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/api?token=${token}`);
    try {
      await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
      const events: RunEvent[] = [];
      const replies = new Map<number, (reply: { result?: any; error?: { message: string } }) => void>();
      const summary = new Promise<RunEvent>((resolve) => {
        ws.on('message', (data) => {
          const message = JSON.parse(data.toString());
          if ('event' in message) {
            events.push(message.event);
            if (message.event.type === 'summary') resolve(message.event);
          } else replies.get(message.id)?.(message);
        });
      });
      let nextId = 1;
      const call = (method: string, ...args: unknown[]) => new Promise<any>((resolve, reject) => {
        const id = nextId++;
        replies.set(id, (reply) => (reply.error ? reject(new Error(reply.error.message)) : resolve(reply.result)));
        ws.send(JSON.stringify({ id, method, args }));
      });

      const { runId } = await call('startRun', tinyPipeline(fixture), { backend: 'cpu' });
      expect(typeof runId).toBe('string');
      const end = await summary;
      expect(end).toMatchObject({ type: 'summary', status: 'completed', runId });
      expect(events.every((e) => e.runId === runId)).toBe(true);
      const steps = events.filter((e): e is Extract<RunEvent, { type: 'step' }> => e.type === 'step').map((e) => e.metrics.step);
      expect(steps.length).toBeGreaterThan(0);
      expect(steps).toEqual([...steps].sort((a, b) => a - b));

      const runs = await call('listRuns');
      expect(runs.map((r: { id: string }) => r.id)).toContain(runId);
      const detail = await call('getRun', runId);
      expect(detail.status).toBe('completed');
      expect(detail.events.filter((e: RunEvent) => e.type === 'step')).toHaveLength(steps.length);
    } finally {
      ws.close();
      await server.close();
      await service.close();
    }
  });
});
