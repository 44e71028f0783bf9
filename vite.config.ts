// Builds the renderer (renderer/ -> dist/renderer). base './' so the same files load from
// file:// in Electron and from any path prefix behind `serve` or an SSH tunnel.
import react from '@vitejs/plugin-react';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  root: here('./renderer'),
  base: './',
  plugins: [react()],
  build: {
    outDir: here('./dist/renderer'),
    emptyOutDir: true,
    sourcemap: true,
    // no inlined assets: the CSP allows scripts and fonts from 'self' only (images may be data:)
    assetsInlineLimit: 0,
    // one local bundle for a desktop/local app: no network cost to split for
    chunkSizeWarningLimit: 2048,
  },
  server: { host: '127.0.0.1' },
});
