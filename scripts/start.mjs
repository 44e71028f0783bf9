#!/usr/bin/env node
// `npm start`: builds what is stale (renderer, Electron bundles) and opens the desktop app.
// Where Electron cannot run — its binary is not installed (and one fetch attempt fails), or
// there is no display — it serves the studio to a browser instead and prints the URL.
// Extra arguments go to `serve` in that case (e.g. `npm start -- --port 0`).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
const extraArgs = process.argv.slice(2);

/** Newest modification time under the given files/folders (tests and build output skipped). */
function newestMtime(paths) {
  let newest = 0;
  const visit = (path) => {
    let info;
    try { info = statSync(path); } catch { return; }
    if (info.isDirectory()) {
      for (const name of readdirSync(path)) {
        if (name === 'node_modules' || name === 'dist' || name === 'build') continue;
        visit(join(path, name));
      }
    } else if (!/\.test\.tsx?$/.test(path)) {
      newest = Math.max(newest, info.mtimeMs);
    }
  };
  paths.forEach((p) => visit(join(root, p)));
  return newest;
}

function mtime(path) {
  try { return statSync(join(root, path)).mtimeMs; } catch { return 0; }
}

function step(label, command, args) {
  console.log(`sparse-studio: ${label}`);
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`sparse-studio: ${label} failed`);
    process.exit(result.status ?? 1);
  }
}

function buildIfStale() {
  const rendererBuilt = mtime('dist/renderer/index.html');
  if (rendererBuilt === 0 || newestMtime(['renderer', 'core', 'vite.config.ts']) > rendererBuilt) {
    step('building the renderer', process.execPath, [join(root, 'node_modules/vite/bin/vite.js'), 'build', '--logLevel', 'warn']);
  }
  const electronBuilt = Math.min(mtime('dist/electron/main.cjs'), mtime('dist/electron/preload.cjs'));
  if (electronBuilt === 0 || newestMtime(['electron', 'host', 'core', 'native/index.ts', 'scripts/build-electron.mjs']) > electronBuilt) {
    step('bundling the Electron main process', process.execPath, [join(root, 'scripts/build-electron.mjs')]);
  }
}

/** Path of the Electron binary, or null when the package has none installed. */
function electronBinary() {
  try {
    delete require.cache[require.resolve('electron')];
    const path = require('electron');
    return typeof path === 'string' && existsSync(path) ? path : null;
  } catch {
    return null;
  }
}

function fetchElectronOnce() {
  const installer = join(root, 'node_modules/electron/install.js');
  if (!existsSync(installer)) return;
  spawnSync(process.execPath, [installer], { cwd: join(root, 'node_modules/electron'), stdio: 'ignore', timeout: 60_000 });
}

function hasDisplay() {
  if (process.platform !== 'linux') return true;
  return Boolean(process.env.DISPLAY || process.env.WAYLAND_DISPLAY);
}

function run(command, args, env = process.env) {
  const child = spawn(command, args, { cwd: root, stdio: 'inherit', env });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

function serveInBrowser(reason) {
  console.log(`${reason}; serving the studio in your browser instead`);
  run(process.execPath, [join(root, 'bin/sparse-studio.mjs'), 'serve', ...extraArgs]);
}

buildIfStale();
let binary = electronBinary();
if (!binary) {
  fetchElectronOnce();
  binary = electronBinary();
}
if (!binary) serveInBrowser('Electron runtime not found');
else if (!hasDisplay()) serveInBrowser('No display found for the Electron window');
else {
  const env = { ...process.env };
  delete env.ELECTRON_RUN_AS_NODE;
  run(binary, [root], env);
}
