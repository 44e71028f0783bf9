// Engine host: runs the engine in its own process so a crash in a kernel cannot take the
// studio down. The process is started by a spawner function: node's child_process.fork under
// the CLI and `serve` (forkEngine below), Electron's utilityProcess in the desktop app.
//
// Typed exit reasons: completed / failed / cancelled come from the engine's own 'done'
// message; a process that ends without one crashed (or ran out of memory). Cancel asks
// politely first and escalates to SIGKILL after a timeout.
import { fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { EngineToHost, HostToEngine, StartMessage } from './runner/messages';

/** The few things the host needs from a child process, whichever API started it. */
export interface EngineChild {
  readonly pid: number | undefined;
  send(message: HostToEngine): void;
  onMessage(listener: (message: EngineToHost) => void): void;
  /** signal is null when the process exited by itself. */
  onExit(listener: (code: number | null, signal: string | null) => void): void;
  /** Lines the process wrote to stderr (for crash reports); optional for spawners without it. */
  onStderrLine?(listener: (line: string) => void): void;
  kill(signal: 'SIGTERM' | 'SIGKILL'): void;
}

export type EngineSpawner = () => EngineChild;

export type ExitReason = 'completed' | 'failed' | 'cancelled' | 'crashed' | 'oom';

export interface EngineExit {
  reason: ExitReason;
  code: number | null;
  signal: string | null;
  /** The engine's closing message, or the last error/log line before a crash. */
  message?: string;
}

export const ENGINE_ENTRY = fileURLToPath(new URL('./runner/engine-process.ts', import.meta.url));

/**
 * tsx's loader as an absolute file URL: a bare `--import tsx` resolves against the working
 * directory, which breaks `sparse-studio run` started from anywhere outside the studio folder.
 */
export function tsxLoaderUrl(): string {
  const require = createRequire(import.meta.url);
  const pkgFile = require.resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { exports: Record<string, unknown> };
  const entry = pkg.exports['.'];
  if (typeof entry !== 'string') throw new Error(`${pkgFile}: exports["."] is not a file path`);
  return pathToFileURL(join(dirname(pkgFile), entry)).href;
}

/** Spawner for plain Node (CLI, serve, tests): forks engine-process.ts through tsx. */
export function forkEngine(entry = ENGINE_ENTRY): EngineChild {
  const child = fork(entry, [], { execArgv: ['--import', tsxLoaderUrl()], stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  const stderrListeners: ((line: string) => void)[] = [];
  let pending = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) stderrListeners.forEach((l) => l(line));
  });
  // The engine never writes results to stdout; drain it so a chatty library cannot block it.
  child.stdout?.resume();
  return {
    get pid() { return child.pid; },
    send: (message) => { if (child.connected) child.send(message); },
    onMessage: (listener) => { child.on('message', (m) => listener(m as EngineToHost)); },
    // 'close' comes after 'exit' once stderr is drained, so the last error line is known.
    onExit: (listener) => { child.on('close', (code, signal) => { if (pending.trim()) stderrListeners.forEach((l) => l(pending)); pending = ''; listener(code, signal); }); },
    onStderrLine: (listener) => { stderrListeners.push(listener); },
    kill: (signal) => { child.kill(signal); },
  };
}

/** The part of Electron's UtilityProcess the host uses (structural: no Electron import here). */
export interface UtilityProcessLike {
  readonly pid: number | undefined;
  postMessage(message: unknown): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  on(event: 'exit', listener: (code: number) => void): unknown;
  kill(): boolean;
  readonly stderr: NodeJS.ReadableStream | null;
}

/**
 * Adapts a utilityProcess.fork(bundledEnginePath, [], { stdio: 'pipe' }) child for the host.
 * Electron reports only an exit code; a kill by signal shows as a non-zero code.
 */
export function utilityProcessChild(proc: UtilityProcessLike): EngineChild {
  const stderrListeners: ((line: string) => void)[] = [];
  let pending = '';
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) stderrListeners.forEach((l) => l(line));
  });
  return {
    get pid() { return proc.pid; },
    send: (message) => proc.postMessage(message),
    onMessage: (listener) => { proc.on('message', (m) => listener(m as EngineToHost)); },
    onExit: (listener) => { proc.on('exit', (code) => listener(code, null)); },
    onStderrLine: (listener) => { stderrListeners.push(listener); },
    // utilityProcess.kill() only sends SIGTERM; the cancel escalation needs a real SIGKILL.
    kill: (signal) => { if (proc.pid !== undefined) process.kill(proc.pid, signal); else proc.kill(); },
  };
}

const OOM_PATTERN = /out of memory|bad_alloc|ENOMEM|heap limit|Allocation failed/i;

export interface EngineHostEvents {
  message: [EngineToHost];
  exit: [EngineExit];
}

export class EngineHost extends EventEmitter<EngineHostEvents> {
  readonly exited: Promise<EngineExit>;
  private readonly child: EngineChild;
  private done: Extract<EngineToHost, { type: 'done' }> | null = null;
  private lastError: string | undefined;
  /** The last stderr lines: an allocation failure is often followed by a native stack dump. */
  private readonly stderrTail: string[] = [];
  private cancelRequested = false;
  private killTimer: NodeJS.Timeout | null = null;
  private alive = true;

  constructor(spawn: EngineSpawner = () => forkEngine(), private readonly cancelTimeoutMs = 5000) {
    super();
    this.child = spawn();
    this.child.onMessage((message) => {
      if (message.type === 'done') this.done = message;
      if (message.type === 'event' && message.event.type === 'log' && message.event.level === 'error') this.lastError = message.event.message;
      this.emit('message', message);
    });
    this.child.onStderrLine?.((line) => {
      this.lastError = line;
      this.stderrTail.push(line);
      if (this.stderrTail.length > 40) this.stderrTail.shift();
    });
    this.exited = new Promise((resolve) => {
      this.child.onExit((code, signal) => {
        this.alive = false;
        if (this.killTimer) clearTimeout(this.killTimer);
        const exit = this.classify(code, signal);
        this.emit('exit', exit);
        resolve(exit);
      });
    });
  }

  get pid(): number | undefined { return this.child.pid; }
  get running(): boolean { return this.alive; }

  start(message: Omit<StartMessage, 'type'>): void { this.child.send({ type: 'start', ...message }); }
  pause(): void { if (this.alive) this.child.send({ type: 'pause' }); }
  resume(): void { if (this.alive) this.child.send({ type: 'resume' }); }

  /** Asks the engine to stop at the next step; kills it if it has not exited after the timeout. */
  cancel(): void {
    if (!this.alive) return;
    this.cancelRequested = true;
    this.child.send({ type: 'cancel' });
    if (!this.killTimer) this.killTimer = setTimeout(() => { if (this.alive) this.child.kill('SIGKILL'); }, this.cancelTimeoutMs);
  }

  /** Kills the process now (studio shutdown). */
  kill(): void { if (this.alive) this.child.kill('SIGKILL'); }

  private classify(code: number | null, signal: string | null): EngineExit {
    if (this.done) return { reason: this.done.status, code, signal, message: this.done.message };
    if (this.cancelRequested) return { reason: 'cancelled', code, signal, message: 'cancelled (engine killed after the cancel timeout)' };
    const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
    const oomLine = [...this.stderrTail].reverse().find((l) => OOM_PATTERN.test(l));
    const line = oomLine ?? this.lastError;
    return { reason: oomLine ? 'oom' : 'crashed', code, signal, message: `engine process ${how}${line ? `: ${line.trim()}` : ''}` };
  }
}
