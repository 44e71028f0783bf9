// Pipeline files named on the command line: read as regular files, bounded, like every other
// file whose name comes from outside (native/checkpoint/regular-file.ts).
import { MAX_PIPELINE_BYTES } from '../core/parse';
import { FileRefused, readRegularFile } from '../native/checkpoint/regular-file';

export { FileRefused, readRegularFile } from '../native/checkpoint/regular-file';

/**
 * A pipeline file's text for `validate` and `run`, capped at MAX_PIPELINE_BYTES like every
 * other way a pipeline comes in; `error` is why it cannot be read, without the file name.
 */
export function readPipelineText(file: string): { text: string } | { error: string } {
  try {
    return { text: readRegularFile(file, MAX_PIPELINE_BYTES).toString('utf8') };
  } catch (e) {
    if (!(e instanceof FileRefused)) return { error: (e as Error).message };
    const why = e.message.startsWith(`${file}: `) ? e.message.slice(file.length + 2) : e.message;
    if (e.code === 'too_large') return { error: `${why} (pipelines are at most ${MAX_PIPELINE_BYTES} bytes)` };
    if (e.code === 'not_found') return { error: 'no such file' };
    if (e.code === 'not_regular') return { error: why === 'is a directory' ? 'it is a directory' : why };
    return { error: why.includes('EACCES') || why.includes('EPERM') ? 'permission denied' : why };
  }
}
