// JSON Schema of pipeline files, generated from NODE_SPECS (the one source of node fields), so
// editors such as VS Code complete and check a pipeline file through its "$schema" key.
//
// Design choices:
// - One generator, one shipped file: schema/pipeline.schema.json is this function's output
//   written by scripts/write-pipeline-schema.mjs; core/json-schema.test.ts fails when the two differ.
// - The schema describes the shape pass of core/validate.ts (types, bounds, options, required
//   fields, unknown fields); the graph and meaning passes (links, layer ranges against the
//   model, sorted curricula) stay with the validator.
// - Nodes are a `oneOf` over kinds, each fixing `kind` with `const`, so an editor offers the
//   right params for the kind written.
// - Draft-07: the draft VS Code's JSON language service implements fully.
//
// Owned by core/: no Node, DOM or Electron imports here.
import { GATE_METRICS, NODE_KINDS, PARAM_KINDS, PIPELINE_VERSION } from './schema';
import { GATE_METRIC_SPECS, INDEXER_WARMUP_FIELD, LIMITS, MASK_FIELDS, NODE_SPECS, type FieldSpec } from './nodes';

/** Where templates point "$schema" (relative to templates/); the shipped file's path in the repository. */
export const PIPELINE_SCHEMA_PATH = 'schema/pipeline.schema.json';
export const TEMPLATE_SCHEMA_REF = '../schema/pipeline.schema.json';

type Schema = Record<string, unknown>;

const MAX_SEED = 4294967295;

function numberSchema(spec: FieldSpec): Schema {
  const out: Schema = { type: spec.type === 'integer' ? 'integer' : 'number' };
  if (spec.powerOfTwo && spec.min !== undefined && spec.max !== undefined) {
    const powers: number[] = [];
    for (let p = 1; p <= spec.max; p *= 2) if (p >= spec.min) powers.push(p);
    return { ...out, enum: powers };
  }
  if (spec.min !== undefined && Number.isFinite(spec.min)) out[spec.minExclusive ? 'exclusiveMinimum' : 'minimum'] = spec.min;
  if (spec.max !== undefined && Number.isFinite(spec.max)) out[spec.maxExclusive ? 'exclusiveMaximum' : 'maximum'] = spec.max;
  return out;
}

const LAYER_RANGE: Schema = {
  type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 2, maxItems: 2,
  description: 'Inclusive 1-based layer range [first, last].',
};

function objectSchema(fields: Record<string, FieldSpec>, defaults?: Record<string, unknown>): Schema {
  const properties: Schema = {};
  for (const [key, spec] of Object.entries(fields)) properties[key] = fieldSchema(spec, defaults?.[key]);
  return { type: 'object', properties, required: Object.keys(fields).filter((k) => !fields[k].optional), additionalProperties: false };
}

function fieldSchema(spec: FieldSpec, defaultValue: unknown): Schema {
  const about: Schema = { title: spec.label, description: spec.unit ? `${spec.help} (${spec.unit})` : spec.help };
  if (defaultValue !== undefined) about.default = defaultValue;
  switch (spec.type) {
    case 'number':
    case 'integer':
      return { ...about, ...numberSchema(spec) };
    case 'string':
      return { ...about, type: 'string', ...(spec.allowEmpty ? {} : { pattern: '\\S' }) };
    case 'boolean':
      return { ...about, type: 'boolean' };
    case 'enum':
      return { ...about, type: 'string', enum: [...spec.options!] };
    case 'layers':
      return { ...about, ...LAYER_RANGE };
    case 'layers_or_all':
      return { ...about, anyOf: [{ const: 'all' }, LAYER_RANGE] };
    case 'kinds':
      return { ...about, type: 'array', items: { type: 'string', enum: [...(spec.options ?? PARAM_KINDS)] }, minItems: 1, uniqueItems: true };
    case 'mask':
      return { ...about, $ref: '#/definitions/mask' };
    case 'curriculum':
      return {
        ...about, type: 'array', minItems: 1, maxItems: LIMITS.listEntries,
        items: {
          type: 'object', required: ['from_step', 'seq_len'], additionalProperties: false,
          properties: {
            from_step: { type: 'integer', minimum: 0, maximum: LIMITS.steps, description: 'First stage step this entry applies to; the first entry starts at 0, entries sorted.' },
            seq_len: { type: 'integer', minimum: 2, maximum: LIMITS.seqLen, description: 'Sequence length in tokens.' },
          },
        },
      };
    case 'checks':
      return {
        ...about, type: 'array', minItems: 1, maxItems: LIMITS.listEntries,
        items: {
          type: 'object', required: ['metric', 'op', 'threshold'], additionalProperties: false,
          properties: {
            metric: { type: 'string', enum: [...GATE_METRICS], description: GATE_METRICS.map((m) => `${m}: ${GATE_METRIC_SPECS[m].help}`).join(' ') },
            op: { type: 'string', enum: ['<', '<=', '>', '>='] },
            threshold: { type: 'number' },
          },
        },
      };
    case 'model_source':
      return { ...about, type: 'string', pattern: '\\S', examples: ['builtin:demo', 'builtin:demo-moe', 'init:models/demo/config.json'] };
    case 'dataset_source':
      return { ...about, type: 'string', pattern: '\\S', examples: ['builtin:brown'] };
    case 'hash':
      return { ...about, type: 'string', pattern: '^([0-9a-f]{64})?$' };
  }
}

/** MASK_FIELDS, plus the optional `seed_from_teacher` (core/schema.ts SeedFromTeacher) and `indexer_warmup_steps` (validate-fields.ts checkMask). */
function maskSchema(): Schema {
  const base = objectSchema(MASK_FIELDS as unknown as Record<string, FieldSpec>, NODE_SPECS.replace.defaults.mask as unknown as Record<string, unknown>);
  const seed: Schema = {
    description: "Optional: also keep the block pairs the base model attends to above `threshold`; the run records `blocks` and `pairs`.",
    anyOf: [
      { type: 'null' },
      {
        type: 'object', required: ['threshold'], additionalProperties: false, dependencies: { blocks: ['pairs'], pairs: ['blocks'] },
        properties: {
          threshold: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1, description: 'Pooled attention mass share above which a block pair is kept.' },
          blocks: { type: 'integer', minimum: 1, maximum: LIMITS.blocks, description: 'Recorded by the run: blocks per side of the seeded map.' },
          pairs: { type: 'array', items: { type: 'integer', minimum: 0 }, description: 'Recorded by the run: kept pairs as flat indices.' },
        },
      },
    ],
  };
  // null or a step count; the selector rule (indexer only) is the validator's.
  const warmup: Schema = { anyOf: [{ type: 'null' }, fieldSchema(INDEXER_WARMUP_FIELD, undefined)] };
  return { title: 'Mask', ...base, properties: { ...(base.properties as Schema), seed_from_teacher: seed, indexer_warmup_steps: warmup } };
}

/** The pipeline file's JSON Schema (draft-07), from NODE_SPECS and MASK_FIELDS. */
export function pipelineJsonSchema(): Schema {
  const nodeSchemas = NODE_KINDS.map((kind) => {
    const spec = NODE_SPECS[kind];
    return {
      title: spec.label,
      description: spec.description,
      type: 'object',
      required: ['id', 'kind', 'params'],
      additionalProperties: false,
      properties: {
        id: { type: 'string', pattern: '\\S', description: 'Unique node id; links and layout refer to it.' },
        kind: { const: kind },
        label: { type: 'string', description: 'Name shown in the editor (a Train node names its stage).' },
        params: objectSchema(spec.fields as Record<string, FieldSpec>, spec.defaults as unknown as Record<string, unknown>),
      },
    };
  });
  const point = { type: 'object', required: ['x', 'y'], additionalProperties: false, properties: { x: { type: 'number' }, y: { type: 'number' } } };
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'sparse-studio/pipeline.schema.json',
    title: 'Sparse Studio pipeline',
    description: `A Sparse Studio pipeline file, version ${PIPELINE_VERSION}. Generated from core/nodes.ts by core/json-schema.ts; do not edit by hand.`,
    type: 'object',
    required: ['version', 'info', 'seed', 'backend', 'nodes', 'links'],
    additionalProperties: false,
    properties: {
      $schema: { type: 'string', description: 'This schema, for editors.' },
      version: { const: PIPELINE_VERSION, description: 'Pipeline format version.' },
      info: {
        type: 'object', required: ['name', 'author', 'description'], additionalProperties: false,
        properties: { name: { type: 'string', pattern: '\\S' }, author: { type: 'string' }, description: { type: 'string' } },
      },
      seed: { type: 'integer', minimum: 0, maximum: MAX_SEED, description: 'Seed of initialisation, data order and random mask blocks.' },
      backend: { type: 'string', enum: ['auto', 'cpu', 'cuda'], description: "Preferred backend; the CLI's --backend overrides it." },
      nodes: { type: 'array', items: { $ref: '#/definitions/node' } },
      links: {
        type: 'array',
        items: { type: 'object', required: ['from', 'to'], additionalProperties: false, properties: { from: { type: 'string' }, to: { type: 'string' } } },
      },
      layout: {
        type: 'object', required: ['nodes'], additionalProperties: false, description: 'Editor-only positions; the runner ignores them.',
        properties: {
          nodes: { type: 'object', additionalProperties: point },
          viewport: {
            type: 'object', required: ['x', 'y', 'zoom'], additionalProperties: false,
            properties: { x: { type: 'number' }, y: { type: 'number' }, zoom: { type: 'number', exclusiveMinimum: 0 } },
          },
        },
      },
    },
    definitions: {
      node: { oneOf: nodeSchemas },
      mask: maskSchema(),
    },
  };
}

/** The shipped file's text: 2-space JSON with a trailing newline (key order as generated). */
export function pipelineJsonSchemaText(): string {
  return JSON.stringify(pipelineJsonSchema(), null, 2) + '\n';
}
