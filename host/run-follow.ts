// Follows a run folder another process writes (a PyTorch export, another studio): new complete
// lines of events.jsonl become events, in file order. A torn last line (the writer is mid-append
// or died there) is held back until its newline arrives; steps already seen are not repeated.
import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { RunEvent } from '../core/events';

export class RunFollower {
  private offset = 0;
  private partial = '';
  private lastStep = -1;
  private ended = false;

  constructor(readonly runDir: string) {}

  get done(): boolean { return this.ended; }

  /** Events appended since the last call (complete lines only). */
  poll(): RunEvent[] {
    const file = join(this.runDir, 'events.jsonl');
    if (!existsSync(file)) return [];
    const fd = openSync(file, 'r');
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
    const out: RunEvent[] = [];
    for (const line of lines) {
      if (!line.trim()) continue;
      let event: RunEvent;
      try {
        event = JSON.parse(line) as RunEvent;
      } catch {
        continue; // a torn line a crashed writer left mid-file
      }
      if (event.type === 'step') {
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
