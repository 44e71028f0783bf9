import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, WebSocket, type WebSocket as ServerSocket } from 'ws';
import type { AddressInfo } from 'node:net';
import { createWsStudio, type SocketLike } from './ws-client';
import { apiSocketUrl } from './pick';
import type { ApiRequest } from '../../../core/transport';

// A real WebSocket server speaking the wire format of core/transport.ts.
function startServer(handler: (request: ApiRequest, socket: ServerSocket) => void) {
  const server = new WebSocketServer({ port: 0 });
  const sockets = new Set<ServerSocket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('message', (data) => handler(JSON.parse(String(data)) as ApiRequest, socket));
  });
  const port = (server.address() as AddressInfo).port;
  return { server, sockets, url: `ws://127.0.0.1:${port}/api?token=t` };
}

const factory = (url: string) => new WebSocket(url) as unknown as SocketLike;
const cleanups: (() => void)[] = [];
afterEach(() => { for (const c of cleanups.splice(0)) c(); });

function waitFor(predicate: () => boolean, ms = 3000): Promise<void> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (predicate()) resolve();
      else if (Date.now() - start > ms) reject(new Error('timed out'));
      else setTimeout(tick, 10);
    };
    tick();
  });
}

describe('WebSocket StudioApi client', () => {
  it('matches answers to requests by id, even out of order', async () => {
    const { server, url } = startServer((request, socket) => {
      const delay = request.method === 'listTemplates' ? 50 : 0;
      setTimeout(() => socket.send(JSON.stringify({ id: request.id, result: `${request.method}:${JSON.stringify(request.args)}` })), delay);
    });
    const studio = createWsStudio(url, { socketFactory: factory });
    cleanups.push(() => { studio.close(); server.close(); });
    const [a, b] = await Promise.all([studio.api.listTemplates(), studio.api.getTemplate('quick-demo')]);
    expect(a).toBe('listTemplates:[]');
    expect(b).toBe('getTemplate:["quick-demo"]');
    expect(studio.getState()).toBe('open');
  });

  it('turns a server error into a rejected promise with its message', async () => {
    const { server, url } = startServer((request, socket) => {
      socket.send(JSON.stringify({ id: request.id, error: { message: 'no such run: r9' } }));
    });
    const studio = createWsStudio(url, { socketFactory: factory });
    cleanups.push(() => { studio.close(); server.close(); });
    await expect(studio.api.getRun('r9')).rejects.toThrow('no such run: r9');
  });

  it('delivers run events to subscribers until they unsubscribe', async () => {
    const { server, sockets, url } = startServer((request, socket) => socket.send(JSON.stringify({ id: request.id, result: null })));
    const studio = createWsStudio(url, { socketFactory: factory });
    cleanups.push(() => { studio.close(); server.close(); });
    const seen: string[] = [];
    const off = studio.api.onRunEvent((event) => seen.push(event.type));
    await studio.api.systemInfo();
    for (const s of sockets) s.send(JSON.stringify({ event: { runId: 'r1', time: 1, type: 'log', level: 'info', message: 'hi' } }));
    await waitFor(() => seen.length === 1);
    off();
    for (const s of sockets) s.send(JSON.stringify({ event: { runId: 'r1', time: 2, type: 'log', level: 'info', message: 'again' } }));
    await studio.api.systemInfo();
    expect(seen).toEqual(['log']);
  });

  it('hands on every event of a fast stream, in order (2,000 sent back to back)', async () => {
    const { server, sockets, url } = startServer((request, socket) => socket.send(JSON.stringify({ id: request.id, result: null })));
    const studio = createWsStudio(url, { socketFactory: factory });
    cleanups.push(() => { studio.close(); server.close(); });
    const seen: number[] = [];
    studio.api.onRunEvent((event) => { if (event.type === 'log') seen.push(Number(event.message)); });
    await studio.api.systemInfo();
    for (let i = 0; i < 2_000; i++) {
      for (const s of sockets) s.send(JSON.stringify({ event: { runId: 'r1', time: 1000 + (i >> 2), type: 'log', level: 'info', message: String(i) } }));
    }
    await waitFor(() => seen.length >= 2_000);
    expect(seen).toEqual(Array.from({ length: 2_000 }, (_, i) => i));
  });

  it('reconnects with backoff, rejects in-flight calls, and tells listeners it came back', async () => {
    let drop = true;
    const { server, sockets, url } = startServer((request, socket) => {
      if (drop && request.method === 'listRuns') { drop = false; socket.terminate(); return; }
      socket.send(JSON.stringify({ id: request.id, result: 'ok' }));
    });
    const studio = createWsStudio(url, { socketFactory: factory, initialDelayMs: 20 });
    cleanups.push(() => { studio.close(); server.close(); });
    const states: string[] = [];
    studio.onStateChange((s) => states.push(s));
    let reconnects = 0;
    studio.onReconnect(() => reconnects++);
    await expect(studio.api.listRuns()).rejects.toThrow('connection to the studio service lost during listRuns');
    await waitFor(() => reconnects === 1);
    expect(await studio.api.listRuns()).toBe('ok');
    expect(states).toEqual(['open', 'reconnecting', 'open']);
    expect(sockets.size).toBe(1);
  });

  it('queues calls made before the socket opens', async () => {
    const { server, url } = startServer((request, socket) => socket.send(JSON.stringify({ id: request.id, result: request.args[0] })));
    const studio = createWsStudio(url, { socketFactory: factory });
    cleanups.push(() => { studio.close(); server.close(); });
    expect(studio.getState()).toBe('connecting');
    expect(await studio.api.cancelRun('r2')).toBe('r2');
  });
});

describe('apiSocketUrl', () => {
  it('builds the socket URL from the page URL and its token', () => {
    expect(apiSocketUrl({ protocol: 'http:', host: '127.0.0.1:7788', search: '?token=ab%2Bc' })).toBe('ws://127.0.0.1:7788/api?token=ab%2Bc');
    expect(apiSocketUrl({ protocol: 'https:', host: 'x', search: '?token=z' })).toBe('wss://x/api?token=z');
  });
  it('explains a missing token', () => {
    expect(() => apiSocketUrl({ protocol: 'http:', host: 'x', search: '' })).toThrow('page URL has no ?token=');
  });
});
