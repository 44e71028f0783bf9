// Kill test over `serve`: a run started by a WebSocket client, its engine SIGKILLed mid-stage,
// resumed the way the page does it (resumeRun over the socket), ends with metrics.jsonl
// byte-identical to an uninterrupted run of the same pipeline.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { RunEvent } from '../core/events';
import { engineAvailable } from '../native/index';
import { RunManager } from './run-manager';
import { tinyPipeline, writeTinyFixture } from './runner/testing/tiny';
import { newToken, startServer } from './server';
import { createStudioService } from './studio-service';

const root = mkdtempSync(join(tmpdir(), 'server-kill-'));
process.env.SPARSE_STUDIO_CACHE ??= join(root, 'cache');
afterAll(() => rmSync(root, { recursive: true, force: true }));

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Reply = { result?: any; error?: { message: string; code?: string } };

describe.skipIf(!engineAvailable())('serve: kill the engine mid-stage, resume, same metrics', () => {
  it('a SIGKILLed run resumed with resumeRun matches an uninterrupted run byte for byte', async () => {
    const fixture = writeTinyFixture(join(root, 'fixture'));
    const pipeline = tinyPipeline(fixture, { train2: { steps: 12 } });
    let manager: RunManager | null = null;
    const service = createStudioService({
      runsDir: join(root, 'runs'), templatesDir: join(__dirname, '../templates'),
      createRunManager: async (opts) => (manager = new RunManager({ ...opts, threads: 2 })),
    });
    const token = newToken();
    const server = await startServer({ host: '127.0.0.1', port: 0, token, rendererDir: join(root, 'renderer'), api: service });
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/api?token=${token}`);
    try {
      await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
      const replies = new Map<number, (reply: Reply) => void>();
      const listeners = new Set<(e: RunEvent) => void>();
      ws.on('message', (data) => {
        const message = JSON.parse(data.toString());
        if ('event' in message) for (const l of listeners) l(message.event);
        else replies.get(message.id)?.(message);
      });
      let nextId = 1;
      const call = (method: string, ...args: unknown[]) => new Promise<any>((resolve, reject) => { // eslint-disable-line @typescript-eslint/no-explicit-any
        const id = nextId++;
        replies.set(id, (reply) => (reply.error ? reject(new Error(reply.error.message)) : resolve(reply.result)));
        ws.send(JSON.stringify({ id, method, args }));
      });
      /** Resolves with the run's next summary; `onEvent` sees its events until then. */
      const nextSummary = (runId: () => string, onEvent?: (e: RunEvent) => void) => new Promise<Extract<RunEvent, { type: 'summary' }>>((resolve) => {
        const listener = (e: RunEvent) => {
          if (e.runId !== runId()) return;
          onEvent?.(e);
          if (e.type === 'summary') { listeners.delete(listener); resolve(e); }
        };
        listeners.add(listener);
      });

      // The uninterrupted reference.
      let refId = '';
      const refEnd = nextSummary(() => refId);
      refId = (await call('startRun', pipeline, { backend: 'cpu' })).runId;
      expect((await refEnd).status).toBe('completed');

      // The same pipeline, its engine killed in the second stage after the first checkpoint.
      let runId = '';
      let killedPid = 0;
      const crashed = nextSummary(() => runId, (e) => {
        if (killedPid === 0 && e.type === 'step' && e.metrics.stage === 1 && e.metrics.stage_step === 2) {
          killedPid = manager!.enginePid(runId)!;
          process.kill(killedPid, 'SIGKILL');
        }
      });
      runId = (await call('startRun', pipeline, { backend: 'cpu' })).runId;
      const end = await crashed;
      expect(killedPid).toBeGreaterThan(0);
      expect(end.status).toBe('crashed');
      expect((await call('getRun', runId)).status).toBe('crashed');

      // Resumed the way the page does: resumeRun over the socket.
      const resumed = nextSummary(() => runId);
      await call('resumeRun', runId);
      const final = await resumed;
      expect(final.status).toBe('completed');
      const detail = await call('getRun', runId);
      expect(detail.events.some((e: RunEvent) => e.type === 'status' && /resuming from checkpoints[/\\]stage-0/.test(e.message ?? ''))).toBe(true);

      const metrics = (id: string) => readFileSync(join(root, 'runs', id, 'metrics.jsonl'), 'utf8');
      expect(metrics(runId).length).toBeGreaterThan(0);
      expect(metrics(runId)).toBe(metrics(refId));
      expect(JSON.parse(readFileSync(join(root, 'runs', runId, 'run.json'), 'utf8')).resumes).toBe(1);

      // A completed run has nothing to resume: one line back.
      await expect(call('resumeRun', refId)).rejects.toThrow(/has completed; there is nothing to resume/);
    } finally {
      ws.close();
      await server.close();
      await service.close();
    }
  }, 240_000);
});
