// Clock ticks per second (USER_HZ) for /proc/<pid>/stat times. `getconf CLK_TCK` answers it;
// Linux has used 100 on every mainstream architecture for decades, the fallback when getconf is missing.
import { execFileSync } from 'node:child_process';

let cached: number | null = null;

export function clockTicksPerSecond(): number {
  if (cached !== null) return cached;
  try {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2000 }).trim());
    cached = Number.isFinite(value) && value > 0 ? value : 100;
  } catch {
    cached = 100;
  }
  return cached;
}
