// Runs once before all tests: builds the renderer if its sources changed since the last build.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT, buildRendererIfStale } from './renderer-build';

export default function globalSetup(): void {
  mkdirSync(join(PROJECT_ROOT, 'e2e/artifacts'), { recursive: true });
  buildRendererIfStale();
}
