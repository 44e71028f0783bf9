// Builds the object preload.ts exposes as window.studio: exactly the StudioApi methods
// (STUDIO_METHODS + FILE_METHODS) and the two subscriptions, each a thin call into IPC.
// Kept apart from preload.ts (which imports Electron) so vitest can check it directly.
import { FILE_METHODS, STUDIO_METHODS, type MenuCommand, type StudioApi } from '../core/api';
import type { RunEvent } from '../core/events';
import { IPC_EVENT, IPC_MENU } from '../core/transport';
import type { InvokeOutcome } from '../host/api-call';

/** The two IPC operations the bridge needs; preload.ts backs them with ipcRenderer. */
export interface BridgeIo {
  invoke(payload: { method: string; args: unknown[] }): Promise<InvokeOutcome>;
  /** Adds a listener for main -> page messages on `channel`; returns its removal. */
  subscribe(channel: string, listener: (payload: unknown) => void): () => void;
}

export const BRIDGE_KEYS = [...STUDIO_METHODS, ...FILE_METHODS, 'onRunEvent', 'onMenuCommand'] as const;

export function buildStudioBridge(io: BridgeIo): StudioApi {
  const bridge: Record<string, unknown> = {};
  for (const method of [...STUDIO_METHODS, ...FILE_METHODS]) {
    bridge[method] = async (...args: unknown[]) => {
      const outcome = await io.invoke({ method, args });
      if (outcome.ok) return outcome.result;
      // A plain Error with the service's message (IPC would otherwise prefix its own text).
      throw Object.assign(new Error(outcome.error.message), outcome.error.code ? { code: outcome.error.code } : {});
    };
  }
  bridge.onRunEvent = (listener: (event: RunEvent) => void) => io.subscribe(IPC_EVENT, (payload) => listener(payload as RunEvent));
  bridge.onMenuCommand = (listener: (command: MenuCommand) => void) => io.subscribe(IPC_MENU, (payload) => listener(payload as MenuCommand));
  return Object.freeze(bridge) as unknown as StudioApi;
}
