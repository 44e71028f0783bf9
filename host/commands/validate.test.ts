import { execFileSync, spawnSync } from 'node:child_process';
import { MAX_PIPELINE_BYTES } from '../../core/parse';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';


// Runs the real `sparse-studio` entry point in a child process, as a user would.
const BIN = fileURLToPath(new URL('../../bin/sparse-studio.mjs', import.meta.url));
const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));
function runCli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: PROJECT_ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const lines = (text: string) => text.split('\n').filter((l) => l.trim() !== '');

const dir = mkdtempSync(join(tmpdir(), 'validate-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const seedText = readFileSync(new URL('../../templates/seed-progressive.json', import.meta.url), 'utf8');
const file = (name: string, text: string) => { const path = join(dir, name); writeFileSync(path, text); return path; };
const noStack = (r: { stdout: string; stderr: string }) => expect(r.stdout + r.stderr).not.toMatch(/^\s+at /m);

describe('sparse-studio validate', () => {
  it('exits 0 with FILE: ok for every valid file', () => {
    const r = runCli(['validate', 'templates/seed-progressive.json', 'templates/quick-demo.json', 'templates/minicpm41-infllmv2.json', 'core/fixtures/v0-seed-draft.json']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(lines(r.stdout)).toEqual([
      'templates/seed-progressive.json: ok', 'templates/quick-demo.json: ok', 'templates/minicpm41-infllmv2.json: ok',
      'core/fixtures/v0-seed-draft.json: ok (version 0, migrates to 1 on import)',
    ]);
  });

  it('not JSON: exit 1, one line with line:column', () => {
    const path = file('not-json.json', 'this is not json\n');
    const r = runCli(['validate', path]);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([`${path}: $: not valid JSON at line 1, column 1: unexpected character "t": expected a value`]);
    noStack(r);
  });

  it('truncated file: exit 1, one line pointing at the end', () => {
    const text = seedText.slice(0, 300);
    const path = file('truncated.json', text);
    const r = runCli(['validate', path]);
    expect(r.code).toBe(1);
    const out = lines(r.stderr);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(new RegExp(`^${path}: \\$: not valid JSON at line ${text.split('\n').length}, column \\d+: `));
    noStack(r);
  });

  it('wrong types: exit 1, one line per problem with its JSON path', () => {
    const doc = JSON.parse(seedText);
    doc.nodes[6].params.lr = '1e-4';
    doc.nodes[3].params.mask.block_size = 48;
    doc.seed = 'x';
    const path = file('wrong-type.json', JSON.stringify(doc));
    const r = runCli(['validate', path]);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([
      `${path}: seed: expected an integer, got "x"`,
      `${path}: nodes[3].params.mask.block_size: must be a power of two in [16, 256] (got 48)`,
      `${path}: nodes[6].params.lr: expected a number, got "1e-4"`,
    ]);
    expect(r.stdout).toBe('');
    noStack(r);
  });

  it('a cycle: exit 1 naming the link', () => {
    const doc = JSON.parse(seedText);
    doc.links.push({ from: 's1-gate', to: 's1-freeze' });
    const path = file('cycle.json', JSON.stringify(doc, null, 2));
    const r = runCli(['validate', path]);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toContain(`${path}: links[22]: cycle: 's1-freeze' -> 's1-replace' -> 's1-unfreeze' -> 's1-distill' -> 's1-train' -> 's1-gate' -> 's1-freeze'`);
    for (const line of lines(r.stderr)) expect(line.startsWith(`${path}: `)).toBe(true);
    noStack(r);
  });

  it('a missing file: exit 2, still checking the others', () => {
    const bad = file('bad.json', '[]');
    const r = runCli(['validate', join(dir, 'missing.json'), bad, 'templates/quick-demo.json']);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual([`${join(dir, 'missing.json')}: cannot read: no such file`, `${bad}: $: a pipeline must be a JSON object, got an array`]);
    expect(lines(r.stdout)).toEqual(['templates/quick-demo.json: ok']);
  });

  it('a directory: exit 2', () => {
    const r = runCli(['validate', dir]);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual([`${dir}: cannot read: it is a directory`]);
  });

  it('bad usage: exit 2', () => {
    expect(runCli(['validate']).code).toBe(2);
    const r = runCli(['validate', '--strict', 'templates/quick-demo.json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^sparse-studio validate: unknown option '--strict'/);
  });

  it('a file over the pipeline cap: exit 2 at once, nothing parsed', () => {
    const path = join(dir, 'huge.json');
    writeFileSync(path, ' '.repeat(MAX_PIPELINE_BYTES + 1));
    const r = runCli(['validate', path]);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual([`${path}: cannot read: file is ${MAX_PIPELINE_BYTES + 1} bytes; at most ${MAX_PIPELINE_BYTES} are read (pipelines are at most ${MAX_PIPELINE_BYTES} bytes)`]);
  });

  it('a FIFO is refused without blocking: exit 2', () => {
    const fifo = join(dir, 'pipe.json');
    execFileSync('mkfifo', [fifo]);
    const r = runCli(['validate', fifo]);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual([`${fifo}: cannot read: not a regular file`]);
  });

  it('many problems: at most 100 lines and a closing "... and N more"', () => {
    const seed = JSON.parse(seedText);
    seed.layout = { nodes: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`ghost-${i}`, { x: 0, y: 0 }])) };
    const path = file('many.json', JSON.stringify(seed));
    const r = runCli(['validate', path]);
    expect(r.code).toBe(1);
    const out = lines(r.stderr);
    expect(out).toHaveLength(101);
    expect(out.at(-1)).toBe(`${path}: $: ... and 200 more problems`);
  });
});
