#!/usr/bin/env node
// Bundles the Electron main process and preload with esbuild:
//   electron/main.ts    -> dist/electron/main.cjs
//   electron/preload.ts -> dist/electron/preload.cjs (sandboxed preloads must be one CommonJS file)
// `electron` stays external (the runtime provides it), and so do native addons (*.node).
//
// import.meta.url: host/ modules locate files next to their sources (the engine process entry,
// the native addon). In a CommonJS bundle import.meta is empty, so each module's
// import.meta.url is rewritten to its source file's URL, computed relative to the bundle at run
// time — the bundle keeps working wherever the project folder is moved.
import { build } from 'esbuild';
import { readFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outDir = join(root, 'dist/electron');

const importMetaUrlPlugin = {
  name: 'import-meta-url-per-module',
  setup(b) {
    b.onLoad({ filter: /\.[cm]?tsx?$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      if (!source.includes('import.meta.url')) return undefined;
      const fromBundle = relative(outDir, args.path).split('\\').join('/');
      const expr = `require('node:url').pathToFileURL(require('node:path').join(__dirname, ${JSON.stringify(fromBundle)})).href`;
      return { contents: source.replaceAll('import.meta.url', `(${expr})`), loader: args.path.endsWith('x') ? 'tsx' : 'ts', resolveDir: dirname(args.path) };
    });
  },
};

const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: true,
  external: ['electron', '*.node'],
  logLevel: 'warning',
  plugins: [importMetaUrlPlugin],
};

await Promise.all([
  build({ ...common, entryPoints: [join(root, 'electron/main.ts')], outfile: join(outDir, 'main.cjs') }),
  build({ ...common, entryPoints: [join(root, 'electron/preload.ts')], outfile: join(outDir, 'preload.cjs') }),
]);
console.log(`built ${relative(root, join(outDir, 'main.cjs'))} and ${relative(root, join(outDir, 'preload.cjs'))}`);
