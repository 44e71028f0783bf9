// `sparse-studio export-torch FILE --out DIR`: writes a PyTorch project that replays the
// pipeline (host/torch-export). Exit codes: 0 written, 1 the export failed, 2 bad usage or an
// invalid pipeline (problems printed `FILE: path: message`).
import { exportTorch } from '../torch-export/export';
import { readPipelineFile } from './run';
import { packageVersion } from '../cli';

const USAGE = 'usage: sparse-studio export-torch FILE --out DIR';

export function parseExportArgs(args: string[]): { file: string; out: string } {
  let file: string | undefined;
  let out: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--out') {
      out = args[++i];
      if (!out) throw new Error('--out needs a value');
    } else if (arg.startsWith('--out=')) {
      out = arg.slice(6);
      if (!out) throw new Error('--out needs a value');
    } else if (arg.startsWith('-')) {
      throw new Error(`unknown argument "${arg}"`);
    } else {
      if (file !== undefined) throw new Error(`only one FILE, got "${file}" and "${arg}"`);
      file = arg;
    }
  }
  if (file === undefined) throw new Error('missing FILE');
  if (out === undefined) throw new Error('missing --out DIR');
  return { file, out };
}

export async function run(args: string[]): Promise<number> {
  let opts: { file: string; out: string };
  try {
    opts = parseExportArgs(args);
  } catch (e) {
    console.error(`sparse-studio export-torch: ${(e as Error).message}`);
    console.error(USAGE);
    return 2;
  }
  const read = readPipelineFile(opts.file);
  if ('lines' in read) {
    for (const line of read.lines) console.error(line);
    return 2;
  }
  try {
    const result = await exportTorch(read.pipeline, opts.out, { studioVersion: packageVersion(), onLog: (l) => console.log(`  ${l}`) });
    console.log(`wrote ${result.files.length} files to ${result.dir} (pipeline sha256 ${result.pipelineSha256.slice(0, 12)})`);
    console.log(`run it: python3 ${result.dir}/train.py --out RUN_DIR   (or torchrun ... / launch.sh; see README.md)`);
    return 0;
  } catch (e) {
    console.error(`sparse-studio export-torch: ${opts.file}: ${(e as Error).message}`);
    return 1;
  }
}
