// Preload (sandboxed): exposes window.studio = the StudioApi, nothing else. The page never
// sees ipcRenderer; each listener gets only the message payload, never the IPC event.
import { contextBridge, ipcRenderer } from 'electron';
import { IPC_INVOKE } from '../core/transport';
import { buildStudioBridge } from './preload-bridge';

const studio = buildStudioBridge({
  invoke: (payload) => ipcRenderer.invoke(IPC_INVOKE, payload),
  subscribe(channel, listener) {
    const relay = (_event: Electron.IpcRendererEvent, payload: unknown) => listener(payload);
    ipcRenderer.on(channel, relay);
    return () => { ipcRenderer.removeListener(channel, relay); };
  },
});

contextBridge.exposeInMainWorld('studio', studio);
