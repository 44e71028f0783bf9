#!/usr/bin/env node
// Builds the engine addon (native/build/Release/sparse_engine.node) offline with node-gyp and
// the machine's Node headers. Runs on `npm install`. A failed build is reported in one line and
// does not fail the install: the studio UI still works and `sparse-studio info` says what is missing.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const gyp = join(root, 'node_modules/node-gyp/bin/node-gyp.js');
// Offline: point node-gyp at the running Node's own headers when npm has not named a nodedir.
const prefix = dirname(dirname(process.execPath));
const nodedir = process.env.npm_config_nodedir || (existsSync(join(prefix, 'include/node/node.h')) ? prefix : undefined);
const args = [gyp, 'rebuild', '-j', '2', ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
const r = spawnSync(process.execPath, args, { cwd: join(root, 'native'), stdio: 'inherit' });
if (r.status !== 0) {
  console.error('sparse-studio: engine addon build failed (see above); the UI works, runs need the engine');
  process.exit(process.env.SPARSE_STUDIO_REQUIRE_NATIVE ? 1 : 0);
}
const cudaBuild = join(root, 'scripts/build-cuda.mjs');
if (existsSync(cudaBuild)) spawnSync(process.execPath, [cudaBuild], { cwd: root, stdio: 'inherit' });
