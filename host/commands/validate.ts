// `sparse-studio validate FILE...`: checks pipeline files the way an import does (JSON
// syntax, migration of older versions, validation).
// Exit 0: every file valid (`FILE: ok` on stdout). Exit 1: problems, one line each on stderr,
// `FILE: json.path: message`. Exit 2: a file cannot be read, or bad usage.
import { parsePipelineText } from '../../core/parse';
import { readPipelineText } from '../safe-read';

const USAGE = 'usage: sparse-studio validate FILE...';

/** One output line never spans two: messages quote user text, which may hold newlines. */
function flat(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}


export async function run(args: string[]): Promise<number> {
  if (args.length === 0) {
    console.error(`sparse-studio validate: no file given\n${USAGE}`);
    return 2;
  }
  const files: string[] = [];
  for (const arg of args) {
    if (arg === '-h' || arg === '--help') { console.log(USAGE); return 0; }
    if (arg === '--') continue;
    if (arg.startsWith('-') && arg !== '-') {
      console.error(`sparse-studio validate: unknown option '${arg}'\n${USAGE}`);
      return 2;
    }
    files.push(arg);
  }
  if (files.length === 0) {
    console.error(`sparse-studio validate: no file given\n${USAGE}`);
    return 2;
  }
  let exit = 0;
  for (const file of files) {
    const read = readPipelineText(file);
    if ('error' in read) {
      console.error(`${file}: cannot read: ${flat(read.error)}`);
      exit = 2;
      continue;
    }
    const text = read.text;
    const result = parsePipelineText(text, file);
    if ('pipeline' in result) {
      const note = result.migratedFrom !== null ? ` (version ${result.migratedFrom}, migrates to ${result.pipeline.version} on import)` : '';
      console.log(`${file}: ok${note}`);
      continue;
    }
    for (const problem of result.problems) console.error(`${file}: ${problem.path}: ${flat(problem.message)}`);
    exit = Math.max(exit, 1);
  }
  return exit;
}
