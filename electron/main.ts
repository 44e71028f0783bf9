// Electron main process: one window, menus, and the StudioApi over IPC.
//
// Design choices:
// - The window is locked down: context isolation, sandbox, no Node in the page, web security on,
//   a strict CSP (header and the page's meta tag), no remote content, no navigation away
//   from the bundled page, no new windows, no permission grants.
// - One IPC entry point (IPC_INVOKE). Every payload is checked by api-call.ts — the same
//   checks `serve` applies to socket messages — and only the app's own page may call it.
// - The services are the plain-Node ones `serve` and the CLI use; only the file dialogs and
//   the menu are Electron's.
import { app, BrowserWindow, dialog, ipcMain, Menu, session, shell, type IpcMainInvokeEvent, type MenuItemConstructorOptions } from 'electron';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { MenuCommand, OpenedPipelineFile } from '../core/api';
import { IPC_EVENT, IPC_INVOKE, IPC_MENU } from '../core/transport';
import { MAX_PIPELINE_BYTES } from '../core/parse';
import { IPC_METHODS, handleApiCall } from '../host/api-call';
import { CONTENT_SECURITY_POLICY } from '../host/static-files';
import { createStudioService, type FileDialogs, type StudioService } from '../host/studio-service';

/** Pipeline files above this size are refused (a large pipeline with layout is ~100 kB). */
const MAX_PIPELINE_FILE_BYTES = MAX_PIPELINE_BYTES;

// The repository in development; the unpacked app folder when packaged (electron-builder.yml).
const projectRoot = app.getAppPath();
// A desktop launch starts in an arbitrary folder; the engine process (forked with
// `--import tsx`) and relative paths in pipelines resolve against the studio's own folder.
process.chdir(projectRoot);
const rendererIndex = join(projectRoot, 'dist/renderer/index.html');
const rendererUrl = pathToFileURL(rendererIndex).href;
const preloadPath = join(__dirname, 'preload.cjs');

let mainWindow: BrowserWindow | null = null;
let service: StudioService | null = null;

app.enableSandbox();
// A second launch hands focus to the first window and quits.
const primaryInstance = app.requestSingleInstanceLock();
if (!primaryInstance) app.quit();

app.on('second-instance', () => {
  if (!mainWindow) return;
  if (mainWindow.isMinimized()) mainWindow.restore();
  mainWindow.focus();
});

app.on('web-contents-created', (_event, contents) => {
  // Only the bundled page, ever: links to the web open in the system browser instead.
  contents.on('will-navigate', (event, url) => {
    if (!isAppUrl(url)) event.preventDefault();
  });
  contents.on('will-redirect', (event, url) => {
    if (!isAppUrl(url)) event.preventDefault();
  });
  contents.setWindowOpenHandler(({ url }) => {
    if (/^https:\/\//.test(url)) void shell.openExternal(url);
    return { action: 'deny' };
  });
  contents.on('will-attach-webview', (event) => event.preventDefault());
});

function isAppUrl(url: string): boolean {
  return url.split(/[?#]/)[0] === rendererUrl;
}

app.whenReady().then(async () => {
  if (!primaryInstance) return;
  if (!existsSync(rendererIndex)) {
    dialog.showErrorBox('Sparse Studio', `The renderer is not built (${rendererIndex} is missing). Run \`npm run build:renderer\`.`);
    app.quit();
    return;
  }
  lockDownSession();
  service = createStudioService({
    runsDir: process.env.SPARSE_STUDIO_RUNS || join(app.getPath('userData'), 'runs'),
    templatesDir: join(projectRoot, 'templates'),
    projectRoot,
    dialogs: fileDialogs(),
  });
  ipcMain.handle(IPC_INVOKE, (event, payload) => {
    if (!fromAppPage(event)) return { ok: false, error: { message: 'calls are accepted from the studio page only', code: 'forbidden' } };
    return handleApiCall(service!, payload, IPC_METHODS);
  });
  service.onRunEvent((runEvent) => {
    if (mainWindow && !mainWindow.isDestroyed()) mainWindow.webContents.send(IPC_EVENT, runEvent);
  });
  Menu.setApplicationMenu(buildMenu());
  createWindow();
}).catch((error) => {
  dialog.showErrorBox('Sparse Studio', `Could not start: ${(error as Error).message}`);
  app.quit();
});

function lockDownSession(): void {
  const ses = session.defaultSession;
  ses.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: { ...details.responseHeaders, 'Content-Security-Policy': [CONTENT_SECURITY_POLICY] } });
  });
  // No remote content: the page is local and talks to main over IPC only.
  ses.webRequest.onBeforeRequest({ urls: ['http://*/*', 'https://*/*', 'ws://*/*', 'wss://*/*'] }, (_details, callback) => callback({ cancel: true }));
  ses.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));
  ses.setPermissionCheckHandler(() => false);
}

function createWindow(): void {
  mainWindow = new BrowserWindow({
    width: 1440,
    height: 900,
    minWidth: 960,
    minHeight: 600,
    title: 'Sparse Studio',
    show: false,
    webPreferences: {
      preload: preloadPath,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      navigateOnDragDrop: false,
      spellcheck: false,
    },
  });
  mainWindow.once('ready-to-show', () => mainWindow?.show());
  mainWindow.on('closed', () => { mainWindow = null; });
  void mainWindow.loadFile(rendererIndex);
}

/** Only the main frame of our window, showing the bundled page, may call the API. */
function fromAppPage(event: IpcMainInvokeEvent): boolean {
  const frame = event.senderFrame;
  return !!frame && !!mainWindow && event.sender === mainWindow.webContents && frame === mainWindow.webContents.mainFrame && isAppUrl(frame.url);
}

function sendMenuCommand(command: MenuCommand): void {
  if (mainWindow && !mainWindow.isDestroyed()) mainWindow.webContents.send(IPC_MENU, command);
}

function buildMenu(): Menu {
  const dev = !app.isPackaged;
  const template: MenuItemConstructorOptions[] = [
    {
      label: 'File',
      submenu: [
        { label: 'Open pipeline…', accelerator: 'CmdOrCtrl+O', click: () => sendMenuCommand('open-pipeline') },
        { label: 'Export pipeline…', accelerator: 'CmdOrCtrl+Shift+E', click: () => sendMenuCommand('export-pipeline') },
        { type: 'separator' },
        { role: 'quit' },
      ],
    },
    { role: 'editMenu' },
    {
      label: 'View',
      submenu: [
        ...(dev ? [{ role: 'reload' }, { role: 'forceReload' }, { role: 'toggleDevTools' }, { type: 'separator' }] as MenuItemConstructorOptions[] : []),
        { role: 'resetZoom' }, { role: 'zoomIn' }, { role: 'zoomOut' }, { type: 'separator' }, { role: 'togglefullscreen' },
      ],
    },
  ];
  return Menu.buildFromTemplate(template);
}

function fileDialogs(): FileDialogs {
  return {
    async openPipelineFile(): Promise<OpenedPipelineFile | null> {
      const options = { title: 'Open pipeline', properties: ['openFile' as const], filters: [{ name: 'Pipeline JSON', extensions: ['json'] }] };
      const result = mainWindow ? await dialog.showOpenDialog(mainWindow, options) : await dialog.showOpenDialog(options);
      const path = result.filePaths[0];
      if (result.canceled || !path) return null;
      const size = (await stat(path)).size;
      if (size > MAX_PIPELINE_FILE_BYTES) throw new Error(`${basename(path)}: file is ${size} bytes; pipeline files are at most ${MAX_PIPELINE_FILE_BYTES}`);
      return { path, name: basename(path), text: await readFile(path, 'utf8') };
    },
    async savePipelineFile(text: string, suggestedName: string): Promise<string | null> {
      const name = safeFileName(suggestedName);
      const options = { title: 'Export pipeline', defaultPath: join(app.getPath('documents'), name), filters: [{ name: 'Pipeline JSON', extensions: ['json'] }] };
      const result = mainWindow ? await dialog.showSaveDialog(mainWindow, options) : await dialog.showSaveDialog(options);
      if (result.canceled || !result.filePath) return null;
      await writeFile(result.filePath, text, 'utf8');
      return result.filePath;
    },
  };
}

/** A suggested name from the page becomes a plain file name ending in .json. */
function safeFileName(suggested: string): string {
  const stem = basename(suggested).replace(/\.json$/i, '').replace(/[^A-Za-z0-9._ -]+/g, '-').replace(/^[.\s-]+/, '').slice(0, 120);
  return `${stem || 'pipeline'}.json`;
}

app.on('window-all-closed', () => {
  if (process.platform !== 'darwin') app.quit();
});

app.on('activate', () => {
  if (app.isReady() && !mainWindow && service) createWindow();
});

app.on('will-quit', () => {
  void service?.close();
});
