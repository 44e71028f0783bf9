// The shipped JSON Schema is the generated one, and every template passes it (with ajv, the
// draft-07 validator already in node_modules) as well as the validator.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import Ajv from 'ajv';
import { PIPELINE_SCHEMA_PATH, TEMPLATE_SCHEMA_REF, pipelineJsonSchema, pipelineJsonSchemaText } from './json-schema';
import { validatePipeline } from './validate';
import { canonicalJson } from './canonical';
import { parsePipelineText } from './parse';

const root = join(__dirname, '..');
const templates = readdirSync(join(root, 'templates')).filter((f) => f.endsWith('.json')).sort();

function compile() {
  const ajv = new Ajv({ allErrors: true, strict: false });
  return ajv.compile(pipelineJsonSchema());
}

describe('pipeline JSON Schema', () => {
  it('the committed schema/pipeline.schema.json equals the generated one (npx tsx scripts/write-pipeline-schema.ts)', () => {
    expect(readFileSync(join(root, PIPELINE_SCHEMA_PATH), 'utf8')).toBe(pipelineJsonSchemaText());
  });

  it.each(templates)('templates/%s points $schema at the shipped file and validates against it', (name) => {
    const doc = JSON.parse(readFileSync(join(root, 'templates', name), 'utf8'));
    expect(doc.$schema).toBe(TEMPLATE_SCHEMA_REF);
    const validate = compile();
    expect(validate(doc) ? [] : validate.errors).toEqual([]);
    expect(validatePipeline(doc)).toEqual([]);
  });

  it('rejects what the shape pass rejects: an unknown param, a wrong kind, a bound, a missing field', () => {
    const validate = compile();
    const base = JSON.parse(readFileSync(join(root, 'templates', 'quick-demo.json'), 'utf8'));
    const mutate = (f: (d: any) => void) => { const d = structuredClone(base); f(d); return d; };
    const train = (d: any) => d.nodes.find((n: any) => n.kind === 'train');
    for (const bad of [
      mutate((d) => { train(d).params.stepz = 1; }),
      mutate((d) => { train(d).params.steps = 0; }),
      mutate((d) => { train(d).params.precision = 'fp8'; }),
      mutate((d) => { d.nodes.find((n: any) => n.kind === 'replace').params.mask.block_size = 48; }),
      mutate((d) => { delete d.seed; }),
      mutate((d) => { d.extra = true; }),
      mutate((d) => { d.nodes[0].kind = 'nope'; }),
      mutate((d) => { d.nodes.find((n: any) => n.kind === 'replace').params.mask.seed_from_teacher = { threshold: 1.5 }; }),
      mutate((d) => { d.nodes.find((n: any) => n.kind === 'replace').params.mask.indexer_warmup_steps = -1; }),
    ]) {
      expect(validate(bad)).toBe(false);
      expect(validatePipeline(bad).length).toBeGreaterThan(0);
    }
  });

  it('accepts an optional seed_from_teacher on a mask, as the validator does', () => {
    const validate = compile();
    const doc = JSON.parse(readFileSync(join(root, 'templates', 'quick-demo.json'), 'utf8'));
    doc.nodes.find((n: any) => n.kind === 'replace').params.mask.seed_from_teacher = { threshold: 0.1, blocks: 2, pairs: [0, 3] };
    expect(validate(doc) ? [] : validate.errors).toEqual([]);
    expect(validatePipeline(doc)).toEqual([]);
  });

  it('accepts an optional indexer_warmup_steps (a step count or null), as the validator does', () => {
    const validate = compile();
    const doc = JSON.parse(readFileSync(join(root, 'templates', 'quick-demo.json'), 'utf8'));
    const mask = doc.nodes.find((n: any) => n.kind === 'replace' && n.params.mask.selector === 'indexer').params.mask;
    for (const steps of [0, 25, null]) {
      mask.indexer_warmup_steps = steps;
      expect(validate(doc) ? [] : validate.errors).toEqual([]);
      expect(validatePipeline(doc)).toEqual([]);
    }
  });

  it('$schema is optional, must be a string, and survives parse and canonical JSON', () => {
    const text = readFileSync(join(root, 'templates', 'quick-demo.json'), 'utf8');
    const parsed = parsePipelineText(text, 'quick-demo.json');
    if (!('pipeline' in parsed)) throw new Error('template did not parse');
    expect(parsed.pipeline.$schema).toBe(TEMPLATE_SCHEMA_REF);
    expect(canonicalJson(parsed.pipeline)).toBe(text);
    const { $schema: _s, ...without } = parsed.pipeline;
    expect(validatePipeline(without)).toEqual([]);
    expect(validatePipeline({ ...without, $schema: 3 }).map((p) => p.path)).toEqual(['$schema']);
  });
});
