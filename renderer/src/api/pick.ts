// Picks the transport: window.studio (Electron preload) when present, else a WebSocket to the
// `serve` process that delivered this page, with the token it put in the page URL.
import type { StudioApi } from '../../../core/api';
import { ipcConnection, type StudioConnection } from './connection';
import { createWsStudio } from './ws-client';

export interface PageLocation { protocol: string; host: string; search: string }

/** ws(s)://host/api?token=... for the page at `location`; throws when the URL has no token. */
export function apiSocketUrl(location: PageLocation): string {
  const token = new URLSearchParams(location.search).get('token');
  if (!token) throw new Error('page URL has no ?token=; open the URL that `sparse-studio serve` printed');
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/api?token=${encodeURIComponent(token)}`;
}

export function connectStudio(win: { studio?: StudioApi; location: PageLocation }): StudioConnection {
  if (win.studio) return ipcConnection(win.studio);
  return createWsStudio(apiSocketUrl(win.location));
}
