// Follows a run folder another process writes (a PyTorch export, another studio): new complete
// lines of events.jsonl become events, in file order. A torn last line (the writer is mid-append
// or died there) is held back until its newline arrives; steps already seen are not repeated.
import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { RunEvent } from '../core/events';

/**
 * The complete JSON lines appended to one file since the last poll. A torn last line waits for
 * its newline; a line that never parses (a writer died mid-line, then went on) is skipped; a
 * file that shrank was rewritten and is read again from the start.
 */
export class JsonlTail<T = unknown> {
  private offset = 0;
  private partial = '';

  constructor(readonly file: string) {}

  get exists(): boolean { return existsSync(this.file); }

  poll(): T[] {
    if (!existsSync(this.file)) return [];
    let fd: number;
    try { fd = openSync(this.file, 'r'); } catch { return []; } // renamed away between the two calls
    let text = '';
    try {
      const size = fstatSync(fd).size;
      if (size < this.offset) { this.offset = 0; this.partial = ''; } // rewritten: start over
      if (size > this.offset) {
        const buf = Buffer.alloc(size - this.offset);
        const n = readSync(fd, buf, 0, buf.length, this.offset);
        this.offset += n;
        text = buf.subarray(0, n).toString('utf8');
      }
    } finally {
      closeSync(fd);
    }
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    const out: T[] = [];
    for (const line of lines) {
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line) as T);
      } catch {
        // a torn line a crashed writer left mid-file
      }
    }
    return out;
  }
}

export class RunFollower {
  private readonly tail: JsonlTail<RunEvent>;
  private lastStep = -1;
  private ended = false;

  constructor(readonly runDir: string) {
    this.tail = new JsonlTail<RunEvent>(join(runDir, 'events.jsonl'));
  }

  get done(): boolean { return this.ended; }

  /** Events appended since the last call (complete lines only). */
  poll(): RunEvent[] {
    const out: RunEvent[] = [];
    for (const event of this.tail.poll()) {
      if (!event || typeof event !== 'object' || typeof (event as { type?: unknown }).type !== 'string') continue;
      if (event.type === 'step') {
        if (typeof event.metrics?.step !== 'number') continue;
        if (event.metrics.step <= this.lastStep) continue;
        this.lastStep = event.metrics.step;
      }
      if (event.type === 'summary') this.ended = true;
      out.push(event);
    }
    return out;
  }

  /** Calls `onEvent` for every event until the run's summary arrives or `signal` aborts. */
  async follow(onEvent: (event: RunEvent) => void, options: { intervalMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    const interval = options.intervalMs ?? 250;
    for (;;) {
      for (const event of this.poll()) onEvent(event);
      if (this.ended || options.signal?.aborted) return;
      await new Promise((r) => setTimeout(r, interval));
    }
  }
}
