// Profile process entry: the child host/attention-analysis.ts forks (node + tsx) so a teacher
// profile, seconds to minutes of engine work, never blocks the studio's server. It receives one
// 'profile' message, answers with one 'result' or 'error' message and exits.
import type { ProfileReport } from '../core/attention-profile';
import type { DatasetParams } from '../core/schema';
import { ProfileInputError, profileTeacher } from './attention-profile';

export interface ProfileJob {
  type: 'profile';
  /** Absolute model folder; `modelLabel` is the source as the pipeline names it. */
  modelDir: string; modelLabel: string;
  /** Dataset parameters with an absolute source (or a built-in). */
  data: DatasetParams;
  seq: number; block: number; shareGqa: boolean; batches: number; batchSize: number; targetKl: number;
  threads: number;
}

export type ProfileAnswer =
  | { type: 'result'; report: ProfileReport }
  /** input: the request's fault (a length past the model's, data that will not load). */
  | { type: 'error'; message: string; input: boolean };

async function answer(job: ProfileJob): Promise<ProfileAnswer> {
  const { engine } = await import('../native/index');
  let model;
  try {
    model = await engine.loadModel(job.modelDir, { threads: job.threads });
  } catch (e) {
    return { type: 'error', message: `${job.modelLabel}: ${(e as Error).message.split('\n')[0]}`, input: true };
  }
  try {
    const report = await profileTeacher(model, {
      modelLabel: job.modelLabel, dataLabel: job.data.source, modelDir: job.modelDir, data: job.data, seq: job.seq,
      block: job.block, batches: job.batches, batchSize: job.batchSize, shareGqa: job.shareGqa, targetKl: job.targetKl,
    });
    return { type: 'result', report };
  } catch (e) {
    return { type: 'error', message: (e as Error).message.split('\n')[0], input: e instanceof ProfileInputError };
  } finally {
    model.dispose();
  }
}

if (!process.send) throw new Error('profile-process: started without an IPC channel (host/attention-analysis.ts forks it)');
process.once('message', (job: ProfileJob) => {
  void answer(job)
    .catch((e: unknown): ProfileAnswer => ({ type: 'error', message: (e as Error).message.split('\n')[0], input: false }))
    .then((a) => process.send!(a, undefined, undefined, () => process.exit(0)));
});
