// What the app holds: a StudioApi plus the state of the link that carries it. The app never
// branches on the transport; `kind` is only shown in the header.
import type { StudioApi } from '../../../core/api';

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface StudioConnection {
  api: StudioApi;
  kind: 'ipc' | 'websocket';
  getState(): ConnectionState;
  onStateChange(listener: (state: ConnectionState) => void): () => void;
  /** Fires after the link came back; whoever draws live state re-fetches it. */
  onReconnect(listener: () => void): () => void;
  close(): void;
}

/** Electron: the preload bridge is always there while the window lives. */
export function ipcConnection(api: StudioApi): StudioConnection {
  return {
    api,
    kind: 'ipc',
    getState: () => 'open',
    onStateChange: () => () => {},
    onReconnect: () => () => {},
    close: () => {},
  };
}
