// StudioApi over a WebSocket (browser mode, `sparse-studio serve`).
//
// Design choices:
// - Requests carry increasing ids; answers settle the matching entry of a pending map.
// - Calls made while the socket is down wait in a queue and go out after (re)connecting,
//   so a page reload or a dropped SSH tunnel never loses a click.
// - Requests already on the wire when the socket drops are rejected: the server may or may
//   not have acted, and only the caller knows whether a retry is safe.
// - Reconnect with exponential backoff; listeners of `onReconnect` (the run monitor)
//   re-fetch state, because events sent while disconnected are gone.
import type { StudioApi, StudioMethod } from '../../../core/api';
import { STUDIO_METHODS } from '../../../core/api';
import type { RunEvent } from '../../../core/events';
import type { ApiRequest, ServerMessage } from '../../../core/transport';
import type { ConnectionState, StudioConnection } from './connection';

/** The part of the DOM WebSocket this client uses (the `ws` package fits it too, in tests). */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: unknown) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export interface WsClientOptions {
  socketFactory?: (url: string) => SocketLike;
  /** First reconnect delay; doubles up to maxDelayMs. */
  initialDelayMs?: number;
  maxDelayMs?: number;
}

const OPEN = 1;

interface Pending { resolve(value: unknown): void; reject(error: Error): void; method: StudioMethod }

export function createWsStudio(url: string, options: WsClientOptions = {}): StudioConnection {
  const socketFactory = options.socketFactory ?? ((u: string) => new WebSocket(u) as unknown as SocketLike);
  const initialDelay = options.initialDelayMs ?? 250;
  const maxDelay = options.maxDelayMs ?? 5000;

  let socket: SocketLike | null = null;
  let state: ConnectionState = 'connecting';
  let delay = initialDelay;
  let nextId = 1;
  let everOpened = false;
  let closedByUser = false;
  let reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  const pending = new Map<number, Pending>();
  const queue: ApiRequest[] = [];
  const eventListeners = new Set<(event: RunEvent) => void>();
  const stateListeners = new Set<(state: ConnectionState) => void>();
  const reconnectListeners = new Set<() => void>();

  function setState(next: ConnectionState): void {
    if (next === state) return;
    state = next;
    for (const listener of stateListeners) listener(next);
  }

  function connect(): void {
    reconnectTimer = null;
    const ws = socketFactory(url);
    socket = ws;
    ws.onopen = () => {
      delay = initialDelay;
      const wasReconnect = everOpened;
      everOpened = true;
      setState('open');
      for (const request of queue.splice(0)) ws.send(JSON.stringify(request));
      if (wasReconnect) for (const listener of reconnectListeners) listener();
    };
    ws.onmessage = (message) => handleMessage(String(message.data));
    ws.onerror = () => { /* onclose follows and schedules the retry */ };
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      for (const [id, entry] of pending) {
        entry.reject(new Error(`connection to the studio service lost during ${entry.method}`));
        pending.delete(id);
      }
      if (closedByUser) { setState('closed'); return; }
      setState('reconnecting');
      reconnectTimer = setTimeout(connect, delay);
      delay = Math.min(delay * 2, maxDelay);
    };
  }

  function handleMessage(text: string): void {
    let message: ServerMessage;
    try { message = JSON.parse(text) as ServerMessage; } catch { return; }
    if ('event' in message) {
      for (const listener of eventListeners) listener(message.event);
      return;
    }
    const entry = pending.get(message.id);
    if (!entry) return;
    pending.delete(message.id);
    if ('error' in message) entry.reject(new Error(message.error.message));
    else entry.resolve(message.result);
  }

  function call(method: StudioMethod, args: unknown[]): Promise<unknown> {
    if (closedByUser) return Promise.reject(new Error(`connection closed; cannot call ${method}`));
    const request: ApiRequest = { id: nextId++, method, args };
    return new Promise((resolve, reject) => {
      pending.set(request.id, { resolve, reject, method });
      if (socket && socket.readyState === OPEN) socket.send(JSON.stringify(request));
      else queue.push(request);
    });
  }

  const api = {} as Record<string, unknown>;
  for (const method of STUDIO_METHODS) api[method] = (...args: unknown[]) => call(method, args);
  api.onRunEvent = (listener: (event: RunEvent) => void) => {
    eventListeners.add(listener);
    return () => { eventListeners.delete(listener); };
  };

  connect();

  return {
    api: api as unknown as StudioApi,
    kind: 'websocket',
    getState: () => state,
    onStateChange(listener) { stateListeners.add(listener); return () => { stateListeners.delete(listener); }; },
    onReconnect(listener) { reconnectListeners.add(listener); return () => { reconnectListeners.delete(listener); }; },
    close() {
      closedByUser = true;
      if (reconnectTimer) clearTimeout(reconnectTimer);
      if (socket) socket.close(); else setState('closed');
    },
  };
}
