// Writes that survive a power cut or a killed machine, not only a killed process: data is
// fsynced before the rename that publishes it, and the folder after it (the rename itself is
// a change of the folder). Calls go through `durableFs` so tests can watch the order.
import { closeSync, constants, fsyncSync, openSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const durableFs = {
  /** fsync of one file's data. */
  syncFile(file: string): void {
    const fd = openSync(file, constants.O_RDONLY);
    try { fsyncSync(fd); } finally { closeSync(fd); }
  },
  /** fsync of a folder (its entries: creations, renames, removals). Some systems refuse it; then there is nothing more to do. */
  syncDir(dir: string): void {
    let fd: number;
    try { fd = openSync(dir, constants.O_RDONLY | (constants.O_DIRECTORY ?? 0)); } catch { return; }
    try { fsyncSync(fd); } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM' && code !== 'EBADF') throw e;
    } finally { closeSync(fd); }
  },
};

/** Replaces `file` atomically and durably: temp file written and fsynced, renamed, folder fsynced. */
export function replaceFileDurably(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, data);
  durableFs.syncFile(tmp);
  renameSync(tmp, file);
  durableFs.syncDir(dirname(file));
}

/** fsyncs every file under `dir`, then every folder bottom-up (`dir` last). */
export function syncTree(dir: string): void {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) syncTree(path);
    else durableFs.syncFile(path);
  }
  durableFs.syncDir(dir);
}
