// Wire format of the StudioApi over WebSocket (`serve`) and over Electron IPC.
// The page is served at http://HOST:PORT/?token=TOKEN; the socket connects to
// ws://HOST:PORT/api?token=TOKEN. Requests without the token get HTTP 401.
import type { RunEvent } from './events';
import type { StudioMethod } from './api';

export interface ApiRequest { id: number; method: StudioMethod; args: unknown[] }
export type ApiResponse = { id: number; result: unknown } | { id: number; error: { message: string; code?: string } };
export interface ApiEventMessage { event: RunEvent }
export type ServerMessage = ApiResponse | ApiEventMessage;

/** Electron IPC channel names (preload <-> main). */
export const IPC_INVOKE = 'studio:invoke';
export const IPC_EVENT = 'studio:event';
/** Main -> page: a File-menu command (see MenuCommand in core/api.ts). */
export const IPC_MENU = 'studio:menu';
