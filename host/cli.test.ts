import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { COMMANDS, commandFile, oneLine } from './cli';

// Runs the real `sparse-studio` entry point in a child process, as a user would.
const BIN = fileURLToPath(new URL('../bin/sparse-studio.mjs', import.meta.url));
const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));
function runCli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: PROJECT_ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const lines = (text: string) => text.split('\n').filter((l) => l.trim() !== '');

describe('sparse-studio', () => {
  it('--help prints the usage with every command and exits 0', () => {
    const r = runCli(['--help']);
    expect(r.code).toBe(0);
    for (const name of COMMANDS) expect(r.stdout).toMatch(new RegExp(`^  ${name} `, 'm'));
  });

  it('--version prints the package version', () => {
    const r = runCli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('no command: usage on stderr, exit 2', () => {
    const r = runCli([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^usage: sparse-studio/);
  });

  it('unknown command: one line, exit 2', () => {
    const r = runCli(['frobnicate']);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual(["sparse-studio: unknown command 'frobnicate' (commands: run, validate, eval, profile, serve, bench, info, export-torch, watch; see sparse-studio --help)"]);
  });

  it('a command this build lacks answers "not yet available", exit 2', () => {
    const missing = COMMANDS.filter((name) => commandFile(name) === null);
    for (const name of missing) {
      const r = runCli([name]);
      expect(r.code).toBe(2);
      expect(lines(r.stderr)).toEqual([`sparse-studio ${name}: not yet available in this build`]);
    }
    expect(commandFile('validate')).not.toBeNull();
    expect(commandFile('info')).not.toBeNull();
  });
});

describe('oneLine', () => {
  it('keeps only the message, on one line', () => {
    expect(oneLine(new Error('bad\n  thing'))).toBe('bad thing');
    expect(oneLine('plain')).toBe('plain');
    expect(oneLine(new Error(''))).toBe('Error');
  });
});
