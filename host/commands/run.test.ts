// The run command's argument and input handling (exit 2 paths). Exit codes 0/1/3 need the
// engine and are covered by runner/pipeline-run.test.ts.
import { afterAll, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRunArgs, run } from './run';

const dir = mkdtempSync(join(tmpdir(), 'run-cmd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function runCapturing(args: string[]): Promise<{ code: number; errors: string[] }> {
  const errors: string[] = [];
  const spy = vi.spyOn(console, 'error').mockImplementation((line: string) => { errors.push(line); });
  try {
    return { code: await run(args), errors };
  } finally {
    spy.mockRestore();
  }
}

describe('run arguments', () => {
  it('reads FILE and every flag, also as --flag=value', () => {
    expect(parseRunArgs(['p.json'])).toEqual({ file: 'p.json', out: 'runs', json: false, resume: undefined, backend: undefined });
    expect(parseRunArgs(['--json', 'p.json', '--out', 'o', '--resume=r', '--backend', 'cpu'])).toEqual({ file: 'p.json', out: 'o', json: true, resume: 'r', backend: 'cpu' });
    expect(parseRunArgs(['p.json', '--from', 'runs/20260101-x:2'])).toMatchObject({ file: 'p.json', from: { runDir: 'runs/20260101-x', stage: 2 } });
  });
  it('refuses bad usage with one line naming the argument', () => {
    expect(() => parseRunArgs([])).toThrow('missing FILE');
    expect(() => parseRunArgs(['a.json', 'b.json'])).toThrow('only one FILE, got "a.json" and "b.json"');
    expect(() => parseRunArgs(['a.json', '--backend', 'tpu'])).toThrow('--backend must be auto, cpu or cuda, got "tpu"');
    expect(() => parseRunArgs(['a.json', '--out'])).toThrow('--out needs a value');
    expect(() => parseRunArgs(['a.json', '--fast'])).toThrow('unknown argument "--fast"');
    expect(() => parseRunArgs(['a.json', '--from', 'runs/x'])).toThrow('--from must be RUN_DIR:STAGE with STAGE a stage number from 1, got "runs/x"');
    expect(() => parseRunArgs(['a.json', '--from', 'runs/x:2', '--resume', 'runs/x'])).toThrow(/--resume and --from do not go together/);
  });
});

describe('run exit code 2', () => {
  it('on bad usage, with the usage line', async () => {
    const { code, errors } = await runCapturing(['--backend']);
    expect(code).toBe(2);
    expect(errors[0]).toBe('sparse-studio run: --backend needs a value');
    expect(errors[1]).toMatch(/^usage: sparse-studio run FILE/);
  });

  it('on a missing file', async () => {
    const file = join(dir, 'nope.json');
    expect(await runCapturing([file])).toEqual({ code: 2, errors: [`${file}: cannot read (no such file)`] });
  });

  it('on invalid JSON and on validation problems, printed FILE: path: message', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"version": 1,');
    const r1 = await runCapturing([bad]);
    expect(r1.code).toBe(2);
    expect(r1.errors[0]).toMatch(new RegExp(`^${bad}: \\$: not valid JSON at line 1`));

    const template = JSON.parse(readFileSync(new URL('../../templates/quick-demo.json', import.meta.url), 'utf8'));
    const train = template.nodes.find((n: { kind: string }) => n.kind === 'train');
    train.params.lr = -1;
    const invalid = join(dir, 'invalid.json');
    writeFileSync(invalid, JSON.stringify(template));
    const r2 = await runCapturing([invalid, '--out', join(dir, 'runs')]);
    expect(r2.code).toBe(2);
    const index = template.nodes.indexOf(train);
    expect(r2.errors.some((l) => l.startsWith(`${invalid}: nodes[${index}].params.lr: `))).toBe(true);
  });

  it('on --resume of something that is not a run directory', async () => {
    const file = join(dir, 'ok.json');
    writeFileSync(file, readFileSync(new URL('../../templates/quick-demo.json', import.meta.url)));
    const { code, errors } = await runCapturing([file, '--resume', dir]);
    expect(code).toBe(2);
    expect(errors).toEqual([`--resume ${dir}: not a run directory (no run.json)`]);
  });

  it('on --backend cuda where the engine has no usable CUDA, with one line', async () => {
    const file = join(dir, 'ok.json');
    writeFileSync(file, readFileSync(new URL('../../templates/quick-demo.json', import.meta.url)));
    const { code, errors } = await runCapturing([file, '--backend', 'cuda', '--out', join(dir, 'runs')]);
    expect(code).toBe(2);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^(--backend cuda: (this build of the engine has no CUDA backend|this build has no CUDA module|no usable CUDA device|the CUDA module does not load here)|sparse-studio run: engine addon not built)/);
  });
});
