import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { hostHeaders, startServer, type StudioServer } from './server';
import { createStudioService, type StudioService } from './studio-service';

const root = mkdtempSync(join(tmpdir(), 'server-test-'));
const rendererDir = join(root, 'renderer');
const templatesDir = join(root, 'templates');
mkdirSync(join(rendererDir, 'assets'), { recursive: true });
mkdirSync(templatesDir);
writeFileSync(join(rendererDir, 'index.html'), '<!doctype html><title>Sparse Studio</title>');
writeFileSync(join(rendererDir, 'assets', 'app.js'), 'console.log(1)');
writeFileSync(join(rendererDir, 'assets', 'style.css'), 'body{}');
writeFileSync(join(root, 'secret.txt'), 'TOP-SECRET');
symlinkSync(join(root, 'secret.txt'), join(rendererDir, 'link.txt'));
writeFileSync(join(templatesDir, 'tiny.json'), JSON.stringify({ version: 1, info: { name: 'Tiny', author: '', description: 'd' }, nodes: [], links: [] }));

let service: StudioService;
let server: StudioServer;
let open: StudioServer;
const TOKEN = '0123456789abcdef0123456789abcdef';

beforeAll(async () => {
  service = createStudioService({ runsDir: join(root, 'runs'), templatesDir, warn: () => {} });
  server = await startServer({ host: '127.0.0.1', port: 0, token: TOKEN, rendererDir, api: service });
  open = await startServer({ host: '127.0.0.1', port: 0, token: null, rendererDir, api: service });
});
afterAll(async () => {
  await server?.close();
  await open?.close();
  await service?.close();
  rmSync(root, { recursive: true, force: true });
});

/** Raw GET: the path goes on the wire exactly as written (no client-side normalisation). */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('serve: token', () => {
  it('prints a URL with a 128-bit token on the bound port', () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/?token=${TOKEN}`);
    expect(server.port).toBeGreaterThan(0);
  });

  it('answers 401 without the token or with a wrong one, 200 with it', async () => {
    expect((await get(server.port, '/')).status).toBe(401);
    expect((await get(server.port, '/assets/app.js')).status).toBe(401);
    expect((await get(server.port, '/?token=wrong')).status).toBe(401);
    expect((await get(server.port, `/?token=${TOKEN.slice(0, -1)}0`)).status).toBe(401);
    const ok = await get(server.port, `/?token=${TOKEN}`);
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('<title>Sparse Studio</title>');
  });

  it('sets an HttpOnly cookie that lets the page load its own assets', async () => {
    const page = await get(server.port, `/?token=${TOKEN}`);
    const cookie = String(page.headers['set-cookie']);
    expect(cookie).toContain(`sparse_studio_token_${server.port}=${TOKEN}`);
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Strict');
    const withCookie = await get(server.port, '/assets/app.js', { cookie: `other=1; sparse_studio_token_${server.port}=${TOKEN}` });
    expect(withCookie.status).toBe(200);
    expect((await get(server.port, '/assets/app.js', { cookie: `sparse_studio_token_${server.port}=nope` })).status).toBe(401);
  });

  it('serves without a token when started with --no-token', async () => {
    expect(open.url).toBe(`http://127.0.0.1:${open.port}/`);
    expect((await get(open.port, '/')).status).toBe(200);
  });
});

describe('serve: static files', () => {
  const q = `?token=${TOKEN}`;
  it('sends index.html for / with the CSP, and correct MIME types', async () => {
    const page = await get(server.port, `/${q}`);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.headers['referrer-policy']).toBe('no-referrer');
    expect((await get(server.port, `/assets/app.js${q}`)).headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect((await get(server.port, `/assets/style.css${q}`)).headers['content-type']).toBe('text/css; charset=utf-8');
    expect((await get(server.port, `/missing.js${q}`)).status).toBe(404);
    expect((await get(server.port, `/assets${q}`)).status).toBe(404);
  });

  it('refuses every way out of the renderer folder', async () => {
    for (const path of ['/../secret.txt', '/%2e%2e/secret.txt', '/assets/..%2f..%2fsecret.txt', '/%2e%2e%2fsecret.txt',
      '/..%5csecret.txt', '/assets/%2e%2e/%2e%2e/secret.txt', '/%00index.html', '/%E0%A4%A', '/link.txt', '//etc/passwd']) {
      const res = await get(server.port, `${path}${q}`);
      expect([400, 404], path).toContain(res.status);
      expect(res.body, path).not.toContain('TOP-SECRET');
    }
  });

  it('answers 426 for plain HTTP on /api', async () => {
    expect((await get(server.port, `/api${q}`)).status).toBe(426);
  });
});

/** A connected client that collects replies by id. */
async function connect(url: string, headers: Record<string, string> = {}): Promise<{ ws: WebSocket; call(message: unknown): Promise<any>; raw(text: string): Promise<any> }> {
  const ws = new WebSocket(url, { headers });
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
  const waiting: ((message: any) => void)[] = [];
  ws.on('message', (data) => waiting.shift()?.(JSON.parse(data.toString())));
  const next = () => new Promise<any>((resolve) => waiting.push(resolve));
  return {
    ws,
    call(message) { const reply = next(); ws.send(JSON.stringify(message)); return reply; },
    raw(text) { const reply = next(); ws.send(text); return reply; },
  };
}

function refusedStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); ws.terminate(); });
    ws.on('open', () => { ws.close(); reject(new Error('socket opened')); });
    ws.on('error', () => { /* the unexpected-response handler settles */ });
  });
}

describe('serve: WebSocket API', () => {
  const apiUrl = () => `ws://127.0.0.1:${server.port}/api?token=${TOKEN}`;

  it('refuses sockets without the token, on other paths, or from another site', async () => {
    expect(await refusedStatus(`ws://127.0.0.1:${server.port}/api`)).toBe(401);
    expect(await refusedStatus(`ws://127.0.0.1:${server.port}/api?token=bad`)).toBe(401);
    expect(await refusedStatus(`ws://127.0.0.1:${server.port}/other?token=${TOKEN}`)).toBe(404);
    expect(await refusedStatus(apiUrl(), { Origin: 'http://evil.example' })).toBe(403);
  });

  it('accepts the token from the cookie and a same-origin page', async () => {
    const client = await connect(`ws://127.0.0.1:${server.port}/api`, {
      cookie: `sparse_studio_token_${server.port}=${TOKEN}`, Origin: `http://127.0.0.1:${server.port}`,
    });
    expect(await client.call({ id: 1, method: 'listTemplates', args: [] })).toEqual({ id: 1, result: [{ id: 'tiny', name: 'Tiny', description: 'd' }] });
    client.ws.close();
  });

  it('round-trips calls: templates, validation problems, unknown methods', async () => {
    const client = await connect(apiUrl());
    expect(await client.call({ id: 1, method: 'listTemplates', args: [] })).toEqual({ id: 1, result: [{ id: 'tiny', name: 'Tiny', description: 'd' }] });
    const template = await client.call({ id: 2, method: 'getTemplate', args: ['tiny'] });
    expect(template.result.info.name).toBe('Tiny');
    const bad = await client.call({ id: 3, method: 'validate', args: [{ version: 1, nodes: 'not a list' }] });
    expect(bad.id).toBe(3);
    expect(Array.isArray(bad.result)).toBe(true);
    expect(bad.result.length).toBeGreaterThan(0);
    expect(bad.result.every((p: { path: unknown; message: unknown }) => typeof p.path === 'string' && typeof p.message === 'string')).toBe(true);
    expect(await client.call({ id: 4, method: 'rmRf', args: [] })).toEqual({ id: 4, error: { message: 'unknown method "rmRf"', code: 'unknown_method' } });
    expect(await client.call({ id: 5, method: 'openPipelineFile', args: [] })).toMatchObject({ id: 5, error: { code: 'unknown_method' } });
    expect(await client.call({ id: 6, method: 'getTemplate', args: ['../electron/package'] })).toMatchObject({ id: 6, error: { code: 'bad_request' } });
    client.ws.close();
  });

  it('survives malformed messages and keeps answering', async () => {
    const client = await connect(apiUrl());
    expect(await client.raw('{ not json')).toEqual({ id: -1, error: { message: 'message is not a JSON request { id, method, args }', code: 'bad_request' } });
    expect(await client.raw('null')).toEqual({ id: -1, error: { message: 'request.id must be an integer', code: 'bad_request' } });
    expect(await client.call({ id: 'x', method: 'listTemplates', args: [] })).toMatchObject({ id: -1, error: { code: 'bad_request' } });
    expect(await client.call({ id: 7, method: 'getTemplate', args: 'tiny' })).toMatchObject({ id: 7, error: { code: 'bad_request' } });
    const binary = new Promise<any>((resolve) => client.ws.once('message', (d) => resolve(JSON.parse(d.toString()))));
    client.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect((await binary).error.code).toBe('bad_request');
    expect((await client.call({ id: 8, method: 'listTemplates', args: [] })).result).toHaveLength(1);
    client.ws.close();
    // a fresh client still gets through after the abuse
    const again = await connect(apiUrl());
    expect((await again.call({ id: 1, method: 'systemInfo', args: [] })).result.backends.cpu.threads).toBeGreaterThan(0);
    again.ws.close();
  });
});

describe('serve: heartbeat', () => {
  it('keeps answering clients and drops one that stops answering pings', async () => {
    const quick = await startServer({ host: '127.0.0.1', port: 0, token: TOKEN, rendererDir, api: service, heartbeatMs: 40 });
    try {
      const url = `ws://127.0.0.1:${quick.port}/api?token=${TOKEN}`;
      const live = await connect(url);
      const dead = new WebSocket(url, { autoPong: false });
      await new Promise((resolve, reject) => { dead.once('open', resolve); dead.once('error', reject); });
      const deadClosed = new Promise<void>((resolve) => dead.once('close', () => resolve()));
      await new Promise((resolve) => setTimeout(resolve, 300));
      await deadClosed;
      expect(live.ws.readyState).toBe(WebSocket.OPEN);
      expect((await live.call({ id: 1, method: 'listTemplates', args: [] })).result).toHaveLength(1);
      live.ws.close();
    } finally {
      await quick.close();
    }
  });
});

describe('serve: listening', () => {
  it('fails with EADDRINUSE on a taken port and leaves the service usable', async () => {
    await expect(startServer({ host: '127.0.0.1', port: server.port, token: TOKEN, rendererDir, api: service })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    expect(await service.listTemplates()).toHaveLength(1);
  });
});

describe('serve: Host and Origin allow-list (DNS rebinding)', () => {
  it('answers only loopback names and the --host value with the bound port, with or without a token', async () => {
    for (const s of [server, open]) {
      const path = s === server ? `/?token=${TOKEN}` : '/';
      expect((await get(s.port, path, { host: `evil.example:${s.port}` })).status).toBe(421);
      expect((await get(s.port, path, { host: `127.0.0.1:${s.port + 1}` })).status).toBe(421);
      for (const host of [`127.0.0.1:${s.port}`, `localhost:${s.port}`, `LOCALHOST:${s.port}`, `[::1]:${s.port}`]) {
        expect((await get(s.port, path, { host })).status, host).toBe(200);
      }
    }
  });

  it('refuses a rebound page on the socket even when Origin and Host agree', async () => {
    const url = `ws://127.0.0.1:${open.port}/api`;
    expect(await refusedStatus(url, { Host: `evil.example:${open.port}`, Origin: `http://evil.example:${open.port}` })).toBe(421);
    expect(await refusedStatus(url, { Origin: `http://evil.example:${open.port}` })).toBe(403);
    expect(await refusedStatus(url, { Origin: `https://127.0.0.1:${open.port}` })).toBe(403);
    expect(await refusedStatus(url, { Origin: 'null' })).toBe(403);
    const client = await connect(url, { Origin: `http://localhost:${open.port}` });
    expect((await client.call({ id: 1, method: 'listTemplates', args: [] })).result).toHaveLength(1);
    client.ws.close();
  });

  it('adds the machine\'s own addresses when listening on every interface', () => {
    expect(hostHeaders('127.0.0.1', 7788)).toEqual(new Set(['127.0.0.1:7788', 'localhost:7788', '[::1]:7788']));
    expect(hostHeaders('::1', 7788).has('[::1]:7788')).toBe(true);
    expect(hostHeaders('studio.lan', 7788).has('studio.lan:7788')).toBe(true);
    expect(hostHeaders('0.0.0.0', 7788).has('127.0.0.1:7788')).toBe(true);
    expect(hostHeaders('127.0.0.1', 80).has('localhost')).toBe(true);
  });
});
