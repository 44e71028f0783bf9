import { describe, expect, it, vi } from 'vitest';
import { buildFailureReason, parseServeArgs, run } from './serve';

describe('serve arguments', () => {
  it('defaults to 127.0.0.1:7788 with a token', () => {
    expect(parseServeArgs([])).toEqual({ host: '127.0.0.1', port: 7788, token: true });
  });

  it('reads --host, --port (also --flag=value) and --no-token', () => {
    expect(parseServeArgs(['--host', '0.0.0.0', '--port', '0', '--no-token'])).toEqual({ host: '0.0.0.0', port: 0, token: false });
    expect(parseServeArgs(['--port=9000', '--host=::1'])).toEqual({ host: '::1', port: 9000, token: true });
    expect(parseServeArgs(['--max-runs', '3'])).toEqual({ host: '127.0.0.1', port: 7788, token: true, maxRuns: 3 });
  });

  it('refuses bad values and unknown flags with one line naming the flag', () => {
    expect(() => parseServeArgs(['--port', '70000'])).toThrow('--port must be an integer 0-65535 (0 = any free port), got "70000"');
    expect(() => parseServeArgs(['--port', '-1'])).toThrow('--port must be an integer');
    expect(() => parseServeArgs(['--port', '12.5'])).toThrow('--port must be an integer');
    expect(() => parseServeArgs(['--port'])).toThrow('--port needs a value');
    expect(() => parseServeArgs(['--host', ''])).toThrow('--host needs a value');
    expect(() => parseServeArgs(['--tokn'])).toThrow('unknown argument "--tokn"');
    expect(() => parseServeArgs(['--max-runs', '0'])).toThrow('--max-runs must be an integer 1-64, got "0"');
    expect(() => parseServeArgs(['--max-runs=2.5'])).toThrow('--max-runs must be an integer 1-64, got "2.5"');
    expect(() => parseServeArgs(['--no-token=1'])).toThrow('unknown argument "--no-token=1"');
  });

  it('exits 2 with the message and usage on bad usage', async () => {
    const lines: string[] = [];
    const spy = vi.spyOn(console, 'error').mockImplementation((line: string) => { lines.push(line); });
    try {
      expect(await run(['--port', 'abc'])).toBe(2);
    } finally {
      spy.mockRestore();
    }
    expect(lines).toEqual(['sparse-studio serve: --port must be an integer 0-65535 (0 = any free port), got "abc"',
      'usage: sparse-studio serve [--host 127.0.0.1] [--port 7788] [--no-token] [--max-runs N]']);
  });
});

describe('renderer build failures', () => {
  it('reduce to the first informative line without colour codes', () => {
    const error = new Error("Build failed with 1 error:\n\n\u001b[31m[UNRESOLVED_IMPORT] \u001b[0mCould not resolve './styles.css' in renderer/src/main.tsx\n   ╭─[ main.tsx:3:8 ]");
    expect(buildFailureReason(error)).toBe("[UNRESOLVED_IMPORT] Could not resolve './styles.css' in renderer/src/main.tsx");
    expect(buildFailureReason('plain')).toBe('plain');
  });
});
