// Holds the layering line of ARCHITECTURE.md / STYLE.md: core/ imports nothing platform
// specific, electron/services/ imports no Electron, renderer/ imports no Node built-ins.
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
    else if (/\.(ts|tsx)$/.test(name) && !/\.test\.tsx?$/.test(name)) out.push(path);
  }
  return out;
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const m of text.matchAll(/(?:import|export)[^'"`]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|require\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    found.push(m[1] ?? m[2] ?? m[3]);
  }
  return found;
}

const NODE_BUILTINS = /^(node:|fs$|path$|os$|child_process$|http$|https$|net$|crypto$|worker_threads$|url$|stream$|zlib$)/;

function offenders(dir: string, forbidden: (spec: string) => boolean) {
  return sources(join(root, dir)).flatMap((file) =>
    imports(file).filter(forbidden).map((spec) => `${relative(root, file)} imports ${spec}`));
}

describe('layering', () => {
  it('core/ imports no Node, DOM framework or Electron module', () => {
    expect(offenders('core', (s) => NODE_BUILTINS.test(s) || s === 'electron' || s.startsWith('react') || s.startsWith('../native') || s.startsWith('../electron'))).toEqual([]);
  });
  it('electron/services/ imports no Electron', () => {
    expect(offenders('electron/services', (s) => s === 'electron' || s.startsWith('electron/'))).toEqual([]);
  });
  it('renderer/ imports no Node built-ins, Electron or native code', () => {
    expect(offenders('renderer/src', (s) => NODE_BUILTINS.test(s) || s === 'electron' || s.includes('/native/') || s.includes('/electron/'))).toEqual([]);
  });
});
