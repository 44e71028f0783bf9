#!/usr/bin/env node
// Entry point of the `sparse-studio` command: runs the TypeScript CLI through tsx so the
// CLI, `serve` and the tests all execute the same sources (no separate build to go stale).
// Whatever goes wrong, the user sees one line, never a stack trace.
const oneLine = (error) => String(error instanceof Error ? error.message : error).replace(/\s*\n\s*/g, ' ').trim();
process.on('unhandledRejection', (error) => {
  console.error(`sparse-studio: ${oneLine(error)}`);
  process.exit(1);
});
process.on('uncaughtException', (error) => {
  console.error(`sparse-studio: ${oneLine(error)}`);
  process.exit(1);
});
try {
  const { register } = await import('tsx/esm/api');
  register();
  const { main } = await import('../host/cli.ts');
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  console.error(`sparse-studio: ${oneLine(error)}`);
  process.exitCode = 1;
}
