// Data side of the demo model, from templates/pretrain-demo.json:
//
//   npx tsx scripts/pretrain-demo.ts prepare
//     writes models/demo/validation.txt (the held-out Brown split, documents separated by
//     <|endoftext|>, so `sparse-studio eval --text-file` scores exactly the validation tokens
//     the pretraining evaluated) and prints the unigram baseline perplexity of that split.
//
// The pretraining itself is `node bin/sparse-studio.mjs run templates/pretrain-demo.json`.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DatasetParams, Pipeline } from '../core/schema';
import { loadDataset } from '../host/data/dataset';
import { loadTokenizer } from '../host/data/tokenizer';
import { unigramScore } from '../host/data/unigram';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TEMPLATE = path.join(root, 'templates/pretrain-demo.json');
const DEMO_DIR = path.join(root, 'models/demo');

function datasetParams(pipeline: Pipeline): DatasetParams {
  const node = pipeline.nodes.find((n) => n.kind === 'dataset');
  if (!node || node.kind !== 'dataset') throw new Error(`${TEMPLATE}: no dataset node`);
  return node.params;
}

async function prepare(): Promise<number> {
  const pipeline = JSON.parse(readFileSync(TEMPLATE, 'utf8')) as Pipeline;
  const tokenizerPath = path.join(DEMO_DIR, 'tokenizer.json');
  const dataset = await loadDataset(datasetParams(pipeline), tokenizerPath, { onLog: (line) => console.log(line) });
  const tokenizer = loadTokenizer(tokenizerPath);
  const text = tokenizer.decode(dataset.validationStream);
  const file = path.join(DEMO_DIR, 'validation.txt');
  writeFileSync(file, text);
  const reencoded = tokenizer.encode(text);
  const same = reencoded.length === dataset.validationStream.length && reencoded.every((t, i) => t === dataset.validationStream[i]);
  if (!same) {
    console.error(`${file}: re-encoding does not reproduce the validation tokens`);
    return 1;
  }
  const unigram = unigramScore(dataset.trainStream, dataset.validationStream, dataset.vocabSize);
  console.log(`wrote ${path.relative(root, file)}: ${dataset.validationDocuments} documents, ${dataset.validationTokens} tokens (re-encodes exactly)`);
  console.log(`train split: ${dataset.trainDocuments} documents, ${dataset.trainTokens} tokens`);
  console.log(`unigram baseline on the validation split: loss ${unigram.loss.toFixed(4)} nats, ppl ${unigram.ppl.toFixed(2)} (${unigram.tokens} tokens)`);
  return 0;
}

async function main(args: string[]): Promise<number> {
  if (args[0] === 'prepare') return prepare();
  console.error('usage: npx tsx scripts/pretrain-demo.ts prepare');
  return 2;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e) => { console.error((e as Error).message); process.exitCode = 1; });
}
