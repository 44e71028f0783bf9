// Vite build of the UI bench page (renderer/bench.html) into dist/bench-ui.
import react from '@vitejs/plugin-react';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  root: here('../renderer'),
  base: './',
  plugins: [react()],
  logLevel: 'warn',
  build: {
    outDir: here('../dist/bench-ui'),
    emptyOutDir: true,
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 4000,
    minify: process.env.BENCH_UI_MINIFY !== '0',
    rolldownOptions: { input: here('../renderer/bench.html') },
  },
});
