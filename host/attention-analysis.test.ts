// StudioApi.analyzeAttention through the call checks both transports use (api-call.ts): bad
// requests refused with one line, paths outside a serve client's folders refused, the profile run
// in a child process (the service answers other calls meanwhile) with the CLI's numbers, and
// answers cached per request for the session.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { attentionProfileRequest, type AttentionProfileRequest, type ProfileReport } from '../core/attention-profile';
import type { Pipeline } from '../core/schema';
import { engineAvailable } from '../native/index';
import { handleApiCall, SERVER_METHODS } from './api-call';
import { checkProfileRequest, forkProfileJob } from './attention-analysis';
import type { ProfileJob } from './profile-process';
import { createStudioService } from './studio-service';

const repo = join(import.meta.dirname, '..');
const jobs: ProfileJob[] = [];
const runsDir = mkdtempSync(join(tmpdir(), 'analysis-runs-'));
const service = createStudioService({
  runsDir, templatesDir: join(repo, 'templates'), projectRoot: repo, baseDir: repo,
  confineClientPaths: true, warn: () => {},
  runProfileJob: (job) => { jobs.push(job); return forkProfileJob(job).answer; },
});
afterAll(async () => { await service.close(); rmSync(runsDir, { recursive: true, force: true }); });

const request: AttentionProfileRequest = {
  model: 'builtin:demo', data: { source: 'builtin:brown', format: 'auto', text_field: 'text', validation_fraction: 0.05, seed: 0, content_hash: '' },
  seq: 64, block: 16, share_gqa: true, batches: 1, batch_size: 1, target_kl: 0.1,
};
const call = (args: unknown[]) => handleApiCall(service, { method: 'analyzeAttention', args }, SERVER_METHODS);

describe('analyzeAttention requests', () => {
  it('refuses bad fields with one line naming the field', async () => {
    expect(() => checkProfileRequest({ ...request, seq: 0 })).toThrow('analyzeAttention: seq must be an integer 1-65536, got 0');
    expect(() => checkProfileRequest({ ...request, block: 128 })).toThrow('block 128 is longer than seq 64');
    expect(() => checkProfileRequest({ ...request, data: 'x' })).toThrow("data must be a Dataset node's parameters");
    expect(() => checkProfileRequest({ ...request, data: { ...request.data, format: 'csv' } })).toThrow('data.format must be auto, txt or jsonl');
    expect(() => checkProfileRequest({ ...request, share_gqa: 1 })).toThrow('share_gqa must be true or false');
    expect(await call(['x'])).toEqual({ ok: false, error: { code: 'bad_request', message: 'analyzeAttention: args[0] must be an object' } });
    expect(await call([{ ...request, model: 'init:cfg.json' }])).toMatchObject({ ok: false, error: { message: 'analyzeAttention: model: an init: model has random weights; profile a trained model' } });
  });

  it('refuses model and data paths outside the folders serve reads for its clients', async () => {
    const outModel = await call([{ ...request, model: '/etc' }]);
    expect(outModel).toMatchObject({ ok: false, error: { code: 'outside_roots', message: 'analyzeAttention: model: /etc is outside the folders this studio reads for its clients (the project, models, runs and working folders)' } });
    const outData = await call([{ ...request, data: { ...request.data, source: '../../etc/passwd' } }]);
    expect(outData).toMatchObject({ ok: false, error: { code: 'outside_roots' } });
    expect(jobs).toHaveLength(0);
  });

  it('derives the request from a Replace node of the seed template: its stage data, longest length and mask block', () => {
    const pipeline = JSON.parse(readFileSync(join(repo, 'templates/seed-progressive.json'), 'utf8')) as Pipeline;
    const r = attentionProfileRequest(pipeline, 's3-replace') as AttentionProfileRequest;
    expect(r).toMatchObject({ model: 'builtin:demo', seq: 512, block: 16, share_gqa: true, batches: 4, batch_size: 2, target_kl: 0.1 });
    expect(r.data.source).toBe('builtin:brown');
    expect(attentionProfileRequest(pipeline, 'model')).toMatchObject({ block: 16, seq: 512 });
    expect(attentionProfileRequest(pipeline, 's1-train')).toBe("'s1-train' is not a Model or Replace node");
  });
});

describe.skipIf(!engineAvailable())('analyzeAttention on the demo model', () => {
  it('profiles in a child process while the service answers, equals the CLI, and caches per request', async () => {
    const pending = call([request]);
    const other = await Promise.race([service.listTemplates().then(() => 'listed'), pending.then(() => 'profiled')]);
    expect(other).toBe('listed');
    const outcome = await pending;
    expect(outcome.ok).toBe(true);
    const report = (outcome as { result: ProfileReport }).result;
    expect(report).toMatchObject({ model: 'builtin:demo', data: 'builtin:brown', seq: 64, block: 16, n_blocks: 4, sequences: 1 });
    expect(report.layers).toHaveLength(12);

    const cli = spawnSync(process.execPath, [join(repo, 'bin/sparse-studio.mjs'), 'profile', '--model', 'models/demo', '--seq', '64', '--block', '16', '--batches', '1', '--batch-size', '1', '--json'], { encoding: 'utf8', cwd: repo });
    const fromCli = JSON.parse(cli.stdout) as ProfileReport;
    expect(report.layers.map((l) => l.curve)).toEqual(fromCli.layers.map((l) => l.curve));
    expect(report.layers[3].mass).toEqual(fromCli.layers[3].mass);

    expect(jobs).toHaveLength(1);
    const again = await call([request]);
    expect((again as { result: ProfileReport }).result).toEqual(report);
    expect(jobs).toHaveLength(1);
    await call([{ ...request, block: 32 }]);
    expect(jobs).toHaveLength(2);

    const tooLong = await call([{ ...request, seq: 4096 }]);
    expect(tooLong).toEqual({ ok: false, error: { code: 'bad_request', message: "analyzeAttention: seq 4096 exceeds the model's max_position_embeddings (1024)" } });
  });
});
