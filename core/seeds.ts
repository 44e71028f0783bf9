// Which seed drives what. The pipeline seed drives everything random in a run: the random
// initialisation of an `init:` model, the Dataset's split and training order, and the random
// blocks (and indexer weights) of every Replace mask. A node overrides it with a seed of its own:
// a Dataset `seed` or a mask `random_seed` of 0 means "follow the pipeline seed", any other
// value is used as written. The runner runs the resolved pipeline; the editor shows the same.
import type { Pipeline, PipelineNode } from './schema';

/** The seed a node's own seed field resolves to (0 follows the pipeline seed). */
export function effectiveSeed(own: number, pipelineSeed: number): number {
  return own === 0 ? pipelineSeed : own;
}

/** A copy of the pipeline with every node seed of 0 replaced by the pipeline seed. */
export function resolveSeeds(pipeline: Pipeline): Pipeline {
  const seed = pipeline.seed;
  const nodes = pipeline.nodes.map((node): PipelineNode => {
    if (node.kind === 'dataset') return { ...node, params: { ...node.params, seed: effectiveSeed(node.params.seed, seed) } };
    if (node.kind === 'replace') {
      const mask = node.params.mask;
      return { ...node, params: { ...node.params, mask: { ...mask, random_seed: effectiveSeed(mask.random_seed, seed) } } };
    }
    return node;
  });
  return { ...pipeline, nodes };
}

export interface SeedUse {
  nodeId: string;
  /** What the seed controls on this node. */
  what: string;
  /** The node's own value (0: follows the pipeline seed). */
  own: number;
  effective: number;
  follows: boolean;
}

/** Every seeded thing in the pipeline, in node order: what the inspector lists under the pipeline seed. */
export function seedUses(pipeline: Pipeline): SeedUse[] {
  const uses: SeedUse[] = [];
  for (const node of pipeline.nodes) {
    if (node.kind === 'model' && node.params.source.startsWith('init:')) {
      uses.push({ nodeId: node.id, what: 'random initialisation', own: pipeline.seed, effective: pipeline.seed, follows: true });
    } else if (node.kind === 'dataset') {
      const own = node.params.seed;
      uses.push({ nodeId: node.id, what: 'document split and training order', own, effective: effectiveSeed(own, pipeline.seed), follows: own === 0 });
    } else if (node.kind === 'replace') {
      const mask = node.params.mask;
      if (mask.random_blocks === 0 && mask.selector !== 'indexer') continue;
      const what = [mask.random_blocks > 0 ? 'random blocks' : '', mask.selector === 'indexer' ? 'indexer initialisation' : ''].filter(Boolean).join(' and ');
      const own = mask.random_seed;
      uses.push({ nodeId: node.id, what, own, effective: effectiveSeed(own, pipeline.seed), follows: own === 0 });
    }
  }
  return uses;
}
