// The `sparse-studio` command line: usage text and dispatch of NAME to ./commands/NAME.ts.
//
// Design choices:
// - Each subcommand is its own module exporting run(args) -> exit code, loaded only when
//   called, so a slow or unbuilt part (the engine addon) never delays `validate` or `--help`.
// - Nothing escapes as a stack trace: every failure becomes one line on stderr. Exit codes:
//   0 ok, 1 the command ran and found problems (or failed), 2 bad usage or unavailable.
// - Plain Node, no Electron import: `serve` and the tests run this same code.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const COMMANDS = ['run', 'validate', 'eval', 'profile', 'serve', 'bench', 'info', 'export-torch', 'watch'] as const;
export type CommandName = (typeof COMMANDS)[number];

export const USAGE = `usage: sparse-studio <command> [options]

commands:
  info [--json]                      version, backends (cpu threads/SIMD; cuda compiled? device?), NVML
  validate FILE...                   check pipeline files; one line per problem: FILE: json.path: message
  run FILE [--out DIR] [--json] [--resume RUN_DIR | --from RUN_DIR:STAGE] [--backend auto|cpu|cuda]
                                     run a pipeline; --json prints one JSON event per line
  eval --model DIR (--token-ids FILE | --text-file FILE) [--seq N] [--dense] [--json]
                                     forward of a checkpoint: tokens, loss, ppl (an exported sparse model with its masks)
  profile --model DIR [--data builtin:brown|FILE] [--seq N] [--block B] [--batches N] [--target-kl X] [--pipeline FILE] [--json]
                                     the teacher's attention mass per block and the attention-KL floor per density
  serve [--host 127.0.0.1] [--port 7788] [--no-token] [--max-runs N]
                                     the studio in a browser (prints the URL with its token); runs beyond --max-runs queue
  bench gemm|attention|train [--json]
                                     engine measurements, one JSON object per measurement
  export-torch FILE --out DIR        write a PyTorch project that replays the pipeline (torchrun, DDP/FSDP2)
  watch RUN_DIR [--json]             follow a run folder another process writes; the live table of run

options:
  -h, --help                         this text
  -V, --version                      print the version

exit codes: 0 ok, 1 problems found or the command failed, 2 bad usage or not available`;

export interface CommandModule { run(args: string[]): Promise<number> }

/** Version from package.json; 'unknown' if it cannot be read (never throws). */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8'));
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** One line, whatever was thrown. */
export function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message || error.name : String(error);
  return text.replace(/\s*\n\s*/g, ' ').trim() || 'unknown error';
}

/** The command's module file, or null when this build does not have it yet. */
export function commandFile(name: CommandName): URL | null {
  const file = new URL(`./commands/${name}.ts`, import.meta.url);
  return existsSync(fileURLToPath(file)) ? file : null;
}

function isCommand(name: string): name is CommandName {
  return (COMMANDS as readonly string[]).includes(name);
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  try {
    if (name === undefined) {
      console.error(USAGE);
      return 2;
    }
    if (name === '-h' || name === '--help' || name === 'help') {
      console.log(USAGE);
      return 0;
    }
    if (name === '-V' || name === '--version') {
      console.log(packageVersion());
      return 0;
    }
    if (!isCommand(name)) {
      console.error(`sparse-studio: unknown command '${name}' (commands: ${COMMANDS.join(', ')}; see sparse-studio --help)`);
      return 2;
    }
    const file = commandFile(name);
    if (!file) {
      console.error(`sparse-studio ${name}: not yet available in this build`);
      return 2;
    }
    const module = (await import(pathToFileURL(fileURLToPath(file)).href)) as Partial<CommandModule>;
    if (typeof module.run !== 'function') {
      console.error(`sparse-studio ${name}: not yet available in this build (its module has no run function)`);
      return 2;
    }
    const code = await module.run(args);
    return Number.isInteger(code) ? code : 1;
  } catch (error) {
    console.error(`sparse-studio${name ? ` ${name}` : ''}: ${oneLine(error)}`);
    return 1;
  }
}
