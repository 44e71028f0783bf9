// The block-sparse layers that an exported model directory's config.json declares in its
// `sparse_attention` block (written by host/runner/export.ts), read back so that a command can run
// the model as exported. A directory without the block is dense. Anything malformed is one line
// naming the field.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MaskSpec } from '../../core/schema';
import { maskProblem } from '../../core/validate-fields';
import { indexerTensorNames, missingSelectorTensors, SELECTOR_FILE } from '../runner/export';

export interface SparseLayer {
  /** 0-based, as config.json writes it. */
  layer: number;
  mask: MaskSpec;
}

/** The layers `dir/config.json` marks block-sparse, with their masks; [] for a dense model. */
export function exportedSparseLayers(dir: string, numLayers: number): SparseLayer[] {
  const file = join(dir, 'config.json');
  const config = JSON.parse(readFileSync(file, 'utf8')) as { sparse_attention?: unknown };
  const block = config.sparse_attention;
  if (block === undefined) return [];
  const at = `${file}: sparse_attention`;
  if (typeof block !== 'object' || block === null || !Array.isArray((block as { layers?: unknown }).layers)) {
    throw new Error(`${at}.layers: expected an array of layers`);
  }
  const out: SparseLayer[] = [];
  const seen = new Set<number>();
  (block as { layers: unknown[] }).layers.forEach((entry, i) => {
    const path = `layers[${i}]`;
    const e = (typeof entry === 'object' && entry !== null ? entry : {}) as { layer?: unknown; attention?: unknown; mask?: unknown };
    if (!Number.isInteger(e.layer) || (e.layer as number) < 0 || (e.layer as number) >= numLayers) {
      throw new Error(`${at}.${path}.layer: expected a layer in [0, ${numLayers - 1}], got ${JSON.stringify(e.layer)}`);
    }
    const layer = e.layer as number;
    if (seen.has(layer)) throw new Error(`${at}.${path}.layer: layer ${layer} is listed twice`);
    seen.add(layer);
    if (e.attention === 'dense') return;
    if (e.attention !== 'block_sparse') {
      throw new Error(`${at}.${path}.attention: expected 'dense' or 'block_sparse', got ${JSON.stringify(e.attention)}`);
    }
    const problem = maskProblem(e.mask, `${at}.${path}.mask`);
    if (problem) throw new Error(problem);
    out.push({ layer, mask: e.mask as MaskSpec });
  });
  checkIndexerWeights(dir, out);
  return out;
}

/** A trained indexer must come with its weights: without them the engine would start a fresh one. */
function checkIndexerWeights(dir: string, layers: SparseLayer[]): void {
  const needed = layers.filter((l) => l.mask.selector === 'indexer').flatMap((l) => Object.values(indexerTensorNames(l.layer)));
  const missing = missingSelectorTensors(dir, needed);
  const file = join(dir, SELECTOR_FILE);
  if (missing === 'no file') throw new Error(`${file}: missing, but config.json's sparse_attention uses the indexer selector (${needed[0]})`);
  if (missing.length > 0) throw new Error(`${file}: lacks ${missing[0]}${missing.length > 1 ? ` and ${missing.length - 1} more` : ''} (an indexer layer's weights)`);
}
