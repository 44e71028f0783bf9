// Writes schema/pipeline.schema.json from NODE_SPECS (core/json-schema.ts).
// Run after changing a node kind's fields: npx tsx scripts/write-pipeline-schema.ts
// core/json-schema.test.ts fails while the committed file differs from the generated one.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PIPELINE_SCHEMA_PATH, pipelineJsonSchemaText } from '../core/json-schema';

const target = fileURLToPath(new URL(`../${PIPELINE_SCHEMA_PATH}`, import.meta.url));
writeFileSync(target, pipelineJsonSchemaText());
console.log(`wrote ${target}`);
