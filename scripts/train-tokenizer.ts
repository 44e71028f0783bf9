// Trains the demo tokenizer: a byte-level BPE over the Brown Corpus training split, written as
// a Hugging Face tokenizer.json (plus tokenizer_config.json) that @huggingface/tokenizers loads.
//
//   npx tsx scripts/train-tokenizer.ts [--vocab-size 4096] [--out models/demo]
//
// The split (seed, validation fraction) comes from templates/pretrain-demo.json, so the
// tokenizer never sees the validation text the demo model is judged on.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DatasetParams, Pipeline } from '../core/schema';
import { loadBrownDocuments } from '../host/data/brown';
import { countWords, toTokenizerJson, trainBpe } from '../host/data/bpe-trainer';
import { splitDocuments } from '../host/data/split';
import { loadTokenizer } from '../host/data/tokenizer';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SPECIAL_TOKENS = ['<|endoftext|>'];

function flag(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
}

/** The dataset node of the demo pretraining template (its split defines "training text"). */
function demoDatasetParams(): DatasetParams {
  const file = path.join(root, 'templates/pretrain-demo.json');
  const pipeline = JSON.parse(readFileSync(file, 'utf8')) as Pipeline;
  const node = pipeline.nodes.find((n) => n.kind === 'dataset');
  if (!node || node.kind !== 'dataset') throw new Error(`${file}: no dataset node`);
  return node.params;
}

async function main(args: string[]): Promise<number> {
  const vocabSize = Number(flag(args, '--vocab-size', '4096'));
  const outDir = path.resolve(root, flag(args, '--out', 'models/demo'));
  const params = demoDatasetParams();
  const started = performance.now();
  const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)}s`;

  const documents = loadBrownDocuments();
  const split = splitDocuments(documents.map((d) => d.group), params.validation_fraction, params.seed);
  const trainTexts = split.train.map((i) => documents[i].text);
  console.log(`brown: ${documents.length} documents, ${split.train.length} train / ${split.validation.length} validation (seed ${params.seed})`);

  const words = countWords(trainTexts);
  console.log(`[${elapsed()}] ${words.size} distinct pre-tokenised words`);
  const trained = trainBpe(words, {
    vocabSize,
    specialTokens: SPECIAL_TOKENS,
    onProgress: (done, total) => console.log(`[${elapsed()}] merges ${done}/${total}`),
  });
  console.log(`[${elapsed()}] vocabulary ${trained.vocab.size} (${trained.merges.length} merges)`);

  mkdirSync(outDir, { recursive: true });
  const tokenizerFile = path.join(outDir, 'tokenizer.json');
  writeFileSync(tokenizerFile, JSON.stringify(toTokenizerJson(trained, SPECIAL_TOKENS), null, 1) + '\n');
  const eos = SPECIAL_TOKENS[0];
  writeFileSync(path.join(outDir, 'tokenizer_config.json'), JSON.stringify({
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: eos,
    eos_token: eos,
    unk_token: eos,
    add_bos_token: false,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    model_max_length: 1024,
  }, null, 2) + '\n');

  // Check what was written with the library that will use it: every document must round-trip.
  const tokenizer = loadTokenizer(tokenizerFile);
  let tokens = 0;
  let wordsInText = 0;
  for (const doc of documents) {
    const ids = tokenizer.encode(doc.text);
    tokens += ids.length;
    wordsInText += doc.text.split(/\s+/).length;
    if (tokenizer.decode(ids) !== doc.text) {
      console.error(`${tokenizerFile}: round trip failed on Brown text ${doc.id}`);
      return 1;
    }
  }
  console.log(`[${elapsed()}] round trip ok on all ${documents.length} texts: ${tokens} tokens, ${(tokens / wordsInText).toFixed(3)} tokens/word`);
  console.log(`wrote ${path.relative(root, tokenizerFile)} (vocab ${tokenizer.vocabSize}, eos ${tokenizer.eosToken}=${tokenizer.eosId})`);
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e) => { console.error((e as Error).message); process.exitCode = 1; });
}
