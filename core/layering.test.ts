// core/ is shared by every process (renderer, main, engine host, CLI): it may import only
// other core/ modules, never Node, DOM-only, Electron or React code.
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const CORE = new URL('./', import.meta.url);
const sources = readdirSync(CORE).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));

describe('core/ layering', () => {
  it('has sources to check', () => expect(sources.length).toBeGreaterThan(5));
  it.each(sources)('%s imports only core modules and uses no Node globals', (file) => {
    // Comments may name these things (the contract mentions window.studio); code may not.
    const text = readFileSync(new URL(file, CORE), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
    const specifiers = [...text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/gm), ...text.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]);
    for (const spec of specifiers) expect(spec, `${file} imports ${spec}`).toMatch(/^\.\/[\w-]+$/);
    expect(text).not.toMatch(/\b(process|require|Buffer|__dirname|window|document)\s*[.(]/);
  });
});
