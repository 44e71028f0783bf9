#!/usr/bin/env node
// Entry point of the `sparse-studio` command: runs the TypeScript CLI through tsx so the
// CLI, `serve` and the tests all execute the same sources (no separate build to go stale).
import { register } from 'tsx/esm/api';
register();
const { main } = await import('../electron/services/cli.ts');
process.exitCode = await main(process.argv.slice(2));
