// The layering line, held in one place (docs/architecture.md draws it):
// - core/ is shared by every process: it imports only other core/ modules and uses no Node,
//   DOM or Electron globals;
// - host/ (CLI, server, runner, data) and native/ import no Electron: only electron/ does;
// - renderer/ imports no Node built-ins, Electron, host or native code.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(__dirname, '..');

function sources(dir: string): string[] {
  const out: string[] = [];
  let entries: string[] = [];
  try { entries = readdirSync(dir); } catch { return out; }
  for (const name of entries) {
    if (name === 'node_modules' || name === 'build' || name === 'dist') continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sources(path));
    else if (/\.(ts|tsx|mjs)$/.test(name) && !/\.test\.tsx?$/.test(name)) out.push(path);
  }
  return out;
}

/** Source text without comments: comments may name what code may not import. */
const code = (file: string) => readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');

function imports(file: string): string[] {
  const found: string[] = [];
  for (const m of code(file).matchAll(/(?:import|export)[^'"`;]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|require\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    found.push(m[1] ?? m[2] ?? m[3]);
  }
  return found;
}

const NODE_BUILTINS = /^(node:|fs$|path$|os$|child_process$|http$|https$|net$|crypto$|worker_threads$|url$|stream$|zlib$)/;
const isElectron = (s: string) => s === 'electron' || s.startsWith('electron/');

function offenders(dir: string, forbidden: (spec: string) => boolean) {
  return sources(join(root, dir)).flatMap((file) =>
    imports(file).filter(forbidden).map((spec) => `${relative(root, file)} imports ${spec}`));
}

describe('layering', () => {
  it('core/ imports only core/ modules', () => {
    expect(sources(join(root, 'core')).length).toBeGreaterThan(5);
    expect(offenders('core', (s) => !/^\.\/[\w-]+$/.test(s))).toEqual([]);
  });
  it('core/ uses no Node or DOM globals', () => {
    const users = sources(join(root, 'core')).filter((f) => /\b(process|require|Buffer|__dirname|window|document)\s*[.(]/.test(code(f)));
    expect(users.map((f) => relative(root, f))).toEqual([]);
  });
  it('nothing outside electron/ imports Electron', () => {
    // The launcher asks the electron package only for its binary's path, to start it.
    const launcher = 'scripts/start.mjs imports electron';
    for (const dir of ['core', 'host', 'native', 'renderer/src', 'scripts', 'bin']) {
      expect(offenders(dir, isElectron).filter((o) => o !== launcher)).toEqual([]);
    }
  });
  it('electron/ holds only the main process and preload, which reach the host through host/', () => {
    expect(offenders('electron', (s) => s.startsWith('.') && !s.startsWith('./') && !s.startsWith('../host/') && !s.startsWith('../core/'))).toEqual([]);
  });
  it('renderer/ imports no Node built-ins, Electron, host or native code', () => {
    expect(offenders('renderer/src', (s) => NODE_BUILTINS.test(s) || isElectron(s) || s.includes('/native/') || s.includes('/host/') || s.includes('/electron/'))).toEqual([]);
  });
  it('a forbidden import is caught (the checks can fail)', () => {
    expect(imports(join(root, 'electron/main.ts'))).toContain('electron');
  });
});
