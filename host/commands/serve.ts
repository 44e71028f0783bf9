// `sparse-studio serve [--host 127.0.0.1] [--port 7788] [--no-token] [--max-runs N]`: the studio in a browser.
// Prints exactly one line on stdout, the page URL with its token, then serves until
// interrupted. Runs go to $SPARSE_STUDIO_RUNS, else ./runs.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { newToken, startServer, type StudioServer } from '../server';
import { createStudioService } from '../studio-service';

const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const USAGE = 'usage: sparse-studio serve [--host 127.0.0.1] [--port 7788] [--no-token] [--max-runs N]';

/** maxRuns: runs whose engines may run at once (later ones queue); undefined: the run manager's default. */
export interface ServeOptions { host: string; port: number; token: boolean; maxRuns?: number }

/** Parses serve's flags; throws one line naming the bad flag. */
export function parseServeArgs(args: string[]): ServeOptions {
  const options: ServeOptions = { host: '127.0.0.1', port: 7788, token: true };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => {
      const v = inline ?? args[++i];
      if (v === undefined || v === '') throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === '--host') options.host = value();
    else if (flag === '--port') {
      const text = value();
      const port = Number(text);
      if (!/^\d+$/.test(text) || port > 65535) throw new Error(`--port must be an integer 0-65535 (0 = any free port), got "${text}"`);
      options.port = port;
    } else if (flag === '--max-runs') {
      const text = value();
      if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 64) throw new Error(`--max-runs must be an integer 1-64, got "${text}"`);
      options.maxRuns = Number(text);
    } else if (flag === '--no-token' && inline === undefined) options.token = false;
    else throw new Error(`unknown argument "${arg}"`);
  }
  return options;
}

/** dist/renderer/index.html, building it with Vite when missing; throws one line on failure. */
export async function ensureRendererBuilt(root = PROJECT_ROOT): Promise<string> {
  const dir = join(root, 'dist/renderer');
  if (existsSync(join(dir, 'index.html'))) return dir;
  try {
    const { build } = await import('vite');
    await build({ configFile: join(root, 'vite.config.ts'), logLevel: 'silent' });
  } catch (error) {
    throw new Error(`dist/renderer is missing and building it failed (${buildFailureReason(error)}); run \`npm run build:renderer\``);
  }
  if (!existsSync(join(dir, 'index.html'))) throw new Error('dist/renderer is missing; run `npm run build:renderer`');
  return dir;
}

/** The first informative line of a Vite/Rolldown error, without colour codes. */
export function buildFailureReason(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const lines = text.replace(/\u001b\[[0-9;]*m/g, '').split('\n').map((l) => l.trim());
  return lines.find((l) => l !== '' && !/^Build failed with \d+ errors?:?$/.test(l)) ?? 'unknown error';
}

export async function run(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    console.log(USAGE);
    return 0;
  }
  let options: ServeOptions;
  try {
    options = parseServeArgs(args);
  } catch (error) {
    console.error(`sparse-studio serve: ${(error as Error).message}`);
    console.error(USAGE);
    return 2;
  }

  let rendererDir: string;
  try {
    rendererDir = await ensureRendererBuilt();
  } catch (error) {
    console.error(`sparse-studio serve: ${(error as Error).message}`);
    return 1;
  }

  const runsDir = resolve(process.env.SPARSE_STUDIO_RUNS || 'runs');
  const service = createStudioService({ runsDir, templatesDir: join(PROJECT_ROOT, 'templates'), projectRoot: PROJECT_ROOT, maxRuns: options.maxRuns, confineClientPaths: true });
  let server: StudioServer;
  try {
    server = await startServer({ host: options.host, port: options.port, token: options.token ? newToken() : null, rendererDir, api: service });
  } catch (error) {
    await service.close();
    console.error(`sparse-studio serve: ${listenError(error as NodeJS.ErrnoException, options)}`);
    return 1;
  }
  console.log(`Sparse Studio: ${server.url}`);
  if (!isLoopback(options.host)) {
    console.error(`sparse-studio serve: listening on ${options.host}: anyone who can reach this port${options.token ? ' and has the token' : ''} can use the studio`);
  }

  return new Promise<number>((done) => {
    const stop = async () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      await server.close().catch(() => {});
      await service.close().catch(() => {});
      done(0);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

function listenError(error: NodeJS.ErrnoException, options: ServeOptions): string {
  switch (error.code) {
    case 'EADDRINUSE': return `port ${options.port} on ${options.host} is already in use (--port 0 picks a free one)`;
    case 'EACCES': return `not allowed to listen on port ${options.port} (ports below 1024 need privileges)`;
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND': return `cannot listen on host "${options.host}": no such local address`;
    default: return `cannot listen on ${options.host}:${options.port}: ${error.message.split('\n')[0]}`;
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
