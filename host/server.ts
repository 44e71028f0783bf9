// The studio over HTTP + WebSocket (`sparse-studio serve`): the built renderer as static files
// and the StudioApi at /api, for a browser on this machine or through an SSH tunnel.
//
// Design choices:
// - A random 128-bit token guards everything. The page URL carries it once (?token=); the
//   server answers with an HttpOnly, SameSite=Strict cookie so the page's own assets load,
//   and the page passes the token on the socket URL. Anything else gets 401.
// - Binds 127.0.0.1 unless told otherwise; port 0 asks the OS for a free port.
// - Every socket message goes through the same checks as Electron IPC (api-call.ts); a
//   malformed message gets an error reply, never a dropped connection or a crashed server.
// - Host is allow-listed on every request and socket (loopback names or the --host value, with
//   the bound port), and a socket's Origin must be one of those: a page on a rebound DNS name
//   (evil.example -> 127.0.0.1) is refused even with --no-token.
// - Sockets are pinged; one that misses a pong is dropped, so a dead SSH tunnel does not keep
//   a ghost subscriber (the page reconnects and re-fetches on its side).
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Duplex } from 'node:stream';
import { WebSocketServer, WebSocket } from 'ws';
import type { StudioApi } from '../core/api';
import type { ApiResponse, ServerMessage } from '../core/transport';
import { CALL_LIMITS, SERVER_METHODS, handleApiCall } from './api-call';
import { sendText, serveStatic } from './static-files';

export interface ServerOptions {
  host: string;
  port: number;
  /** null: no token required (--no-token). */
  token: string | null;
  /** Folder with the built renderer (index.html and assets). */
  rendererDir: string;
  api: StudioApi;
  /** Ping interval; a socket without a pong by the next ping is closed. Default 30 s. */
  heartbeatMs?: number;
}

export interface StudioServer {
  host: string;
  port: number;
  token: string | null;
  /** The page URL, token included. */
  url: string;
  close(): Promise<void>;
}

/** A fresh 128-bit token, hex. */
export function newToken(): string {
  return randomBytes(16).toString('hex');
}

export const API_PATH = '/api';

/** Replies that could not be tied to a request (unparseable message, missing id) use this id. */
export const UNKNOWN_REQUEST_ID = -1;

export async function startServer(options: ServerOptions): Promise<StudioServer> {
  const { token, api, rendererDir } = options;
  let cookieName = 'sparse_studio_token';

  let allowedHosts = new Set<string>();
  const server: Server = createServer((req, res) => {
    const url = requestUrl(req);
    if (!url) return sendText(res, 400, 'bad request');
    if (!allowedHosts.has((req.headers.host ?? '').toLowerCase())) return sendText(res, 421, 'misdirected request: unknown Host header');
    const auth = authorize(req, url, token, cookieName);
    if (auth === 'denied') return sendText(res, 401, 'unauthorized: open the URL that `sparse-studio serve` printed (it carries ?token=)');
    if (url.pathname === API_PATH) return sendText(res, 426, 'the API speaks WebSocket', { Upgrade: 'websocket' });
    // Cookies are shared across ports of one host, so the name carries the port.
    const headers: Record<string, string> = auth === 'query' && token
      ? { 'Set-Cookie': `${cookieName}=${token}; HttpOnly; SameSite=Strict; Path=/` }
      : {};
    serveStatic(rendererDir, req, res, url.pathname, headers).catch(() => res.destroy());
  });
  server.on('clientError', (_error, socket) => socket.destroy());

  const sockets = new WebSocketServer({ noServer: true, maxPayload: CALL_LIMITS.maxChars + 64 * 1024 });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const url = requestUrl(req);
    if (!url || url.pathname !== API_PATH) return refuseUpgrade(socket, 404, 'Not Found');
    if (!allowedHosts.has((req.headers.host ?? '').toLowerCase())) return refuseUpgrade(socket, 421, 'Misdirected Request');
    if (authorize(req, url, token, cookieName) === 'denied') return refuseUpgrade(socket, 401, 'Unauthorized');
    if (!originAllowed(req.headers.origin, allowedHosts)) return refuseUpgrade(socket, 403, 'Forbidden');
    sockets.handleUpgrade(req, socket, head, (ws) => sockets.emit('connection', ws, req));
  });

  const alive = new WeakMap<WebSocket, boolean>();
  sockets.on('connection', (ws: WebSocket) => {
    alive.set(ws, true);
    ws.on('pong', () => alive.set(ws, true));
    ws.on('error', () => ws.terminate());
    ws.on('message', (data, isBinary) => {
      void answer(ws, isBinary ? null : data.toString());
    });
  });

  async function answer(ws: WebSocket, text: string | null): Promise<void> {
    let request: unknown;
    try {
      if (text === null) throw new Error('binary');
      request = JSON.parse(text);
    } catch {
      return send(ws, { id: UNKNOWN_REQUEST_ID, error: { message: 'message is not a JSON request { id, method, args }', code: 'bad_request' } });
    }
    const id = (request as { id?: unknown } | null)?.id;
    if (typeof id !== 'number' || !Number.isSafeInteger(id)) {
      return send(ws, { id: UNKNOWN_REQUEST_ID, error: { message: 'request.id must be an integer', code: 'bad_request' } });
    }
    const outcome = await handleApiCall(api, request, SERVER_METHODS);
    const response: ApiResponse = outcome.ok ? { id, result: outcome.result ?? null } : { id, error: outcome.error };
    send(ws, response);
  }

  const heartbeat = setInterval(() => {
    for (const ws of sockets.clients) {
      if (!alive.get(ws)) { ws.terminate(); continue; }
      alive.set(ws, false);
      ws.ping();
    }
  }, options.heartbeatMs ?? 30_000);
  heartbeat.unref();

  const unsubscribe = api.onRunEvent((event) => {
    const text = JSON.stringify({ event } satisfies ServerMessage);
    for (const ws of sockets.clients) if (ws.readyState === WebSocket.OPEN) ws.send(text);
  });

  try {
    await new Promise<void>((resolveListen, rejectListen) => {
      server.once('error', rejectListen);
      server.listen(options.port, options.host, () => {
        server.off('error', rejectListen);
        const boundPort = (server.address() as AddressInfo).port;
        cookieName = `sparse_studio_token_${boundPort}`;
        allowedHosts = hostHeaders(options.host, boundPort);
        resolveListen();
      });
    });
  } catch (error) {
    clearInterval(heartbeat);
    unsubscribe();
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  const hostInUrl = options.host.includes(':') ? `[${options.host}]` : options.host;
  const url = `http://${hostInUrl}:${port}/${token ? `?token=${token}` : ''}`;

  return {
    host: options.host,
    port,
    token,
    url,
    async close() {
      clearInterval(heartbeat);
      unsubscribe();
      for (const ws of sockets.clients) ws.terminate();
      await new Promise<void>((done) => sockets.close(() => done()));
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}

function send(ws: WebSocket, message: ServerMessage): void {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

function requestUrl(req: IncomingMessage): URL | null {
  try { return new URL(req.url ?? '/', 'http://localhost'); } catch { return null; }
}

/** 'query' when the URL carried the token, 'cookie' when the cookie did, 'open' without a token. */
function authorize(req: IncomingMessage, url: URL, token: string | null, cookieName: string): 'query' | 'cookie' | 'open' | 'denied' {
  if (token === null) return 'open';
  if (tokenMatches(url.searchParams.get('token'), token)) return 'query';
  if (tokenMatches(readCookie(req.headers.cookie, cookieName), token)) return 'cookie';
  return 'denied';
}

function tokenMatches(given: string | null | undefined, token: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=');
  }
  return undefined;
}

/**
 * The Host headers this server answers: loopback names and the --host value, with the bound
 * port. Listening on every interface (0.0.0.0, ::) adds the machine's own addresses.
 */
export function hostHeaders(host: string, port: number): Set<string> {
  const names = new Set(['127.0.0.1', 'localhost', '[::1]', bracketed(host)]);
  if (host === '0.0.0.0' || host === '::') {
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) names.add(bracketed(a.address));
  }
  const withPort = [...names].map((name) => `${name}:${port}`);
  return new Set(port === 80 ? [...withPort, ...names] : withPort); // browsers omit the default port
}

const bracketed = (host: string) => (host.includes(':') && !host.startsWith('[') ? `[${host}]` : host);

/** A browser sends Origin on WebSocket handshakes; it must name an allowed host over http. */
function originAllowed(origin: string | undefined, allowedHosts: Set<string>): boolean {
  if (origin === undefined) return true; // not a browser (CLI clients, tests)
  try {
    const url = new URL(origin);
    return url.protocol === 'http:' && allowedHosts.has(url.host);
  } catch { return false; }
}

function refuseUpgrade(socket: Duplex, status: number, reason: string): void {
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
