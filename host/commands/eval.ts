// `sparse-studio eval --model DIR (--token-ids FILE | --text-file FILE) [--seq N] [--dense] [--json]`:
// forward of a checkpoint over a token stream; prints {"tokens","loss","ppl"}. A directory that
// Sparse Studio exported runs as exported: the layers its config.json's `sparse_attention` block
// marks block-sparse use their masks (static blocks and the selectors' top-k per input), and the
// output adds "sparse_layers" (how many); --dense runs every layer dense instead.
// The stream is cut into windows of seq+1 tokens that overlap by one, so every token after the
// first is predicted exactly once; `tokens` counts those predictions and `loss` is their mean
// cross-entropy in nats (ppl = exp(loss)). A mixture-of-experts model adds "aux_loss" (transformers'
// load_balancing_loss_func over every MoE layer, per forward, averaged over the windows weighted by
// their tokens) and "expert_usage" ({ "<0-based layer>": share of routed token-slots per expert },
// over every evaluated token). Bad input: one line on stderr, exit 2.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModelForCommand } from './load-model';
import { exportedSparseLayers } from './sparse-config';

const USAGE = 'usage: sparse-studio eval --model DIR (--token-ids FILE | --text-file FILE) [--seq N] [--dense] [--json]';
const MAX_BATCH = 8; // windows evaluated together

class UsageError extends Error {}

interface EvalArgs { model: string; tokenIds?: string; textFile?: string; seq?: number; dense: boolean; json: boolean }

export function parseEvalArgs(args: string[]): EvalArgs {
  const out: Partial<EvalArgs> & { json: boolean; dense: boolean } = { json: false, dense: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = () => {
      const v = args[++i];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`${a} needs a value`);
      return v;
    };
    if (a === '--json') out.json = true;
    else if (a === '--dense') out.dense = true;
    else if (a === '--model') out.model = value();
    else if (a === '--token-ids') out.tokenIds = value();
    else if (a === '--text-file') out.textFile = value();
    else if (a === '--seq') {
      const v = value();
      if (!/^\d+$/.test(v) || Number(v) < 1) throw new UsageError(`--seq must be a positive integer, got '${v}'`);
      out.seq = Number(v);
    } else throw new UsageError(`unknown argument '${a}'`);
  }
  if (!out.model) throw new UsageError('--model DIR is required');
  if (!out.tokenIds === !out.textFile) throw new UsageError('give exactly one of --token-ids FILE or --text-file FILE');
  return out as EvalArgs;
}

/** A JSON array of integers, or whitespace-separated integers. */
export function parseTokenIds(text: string, file: string): number[] {
  const trimmed = text.trim();
  let values: unknown[];
  if (trimmed.startsWith('[')) {
    try {
      values = JSON.parse(trimmed);
    } catch (e) {
      throw new UsageError(`${file}: not a valid JSON array (${(e as Error).message})`);
    }
    if (!Array.isArray(values)) throw new UsageError(`${file}: expected a JSON array of token ids`);
  } else {
    values = trimmed === '' ? [] : trimmed.split(/\s+/).map((s) => (/^-?\d+$/.test(s) ? Number(s) : s));
  }
  values.forEach((v, i) => {
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new UsageError(`${file}: token ${i} is not an integer (${JSON.stringify(v)})`);
  });
  return values as number[];
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

/** Windows of seq+1 tokens overlapping by one; the last may be shorter. */
export function windows(ids: number[], seq: number): number[][] {
  const out: number[][] = [];
  for (let start = 0; start + 1 < ids.length; start += seq) out.push(ids.slice(start, start + seq + 1));
  return out;
}

export async function run(args: string[]): Promise<number> {
  let parsed: EvalArgs;
  try {
    parsed = parseEvalArgs(args);
  } catch (e) {
    console.error(`sparse-studio eval: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const model = await loadModelForCommand('eval', parsed.model);
  if (!model) return 2;
  try {
    const V = model.config.vocab_size;
    const maxSeq = model.config.max_position_embeddings;
    const seq = parsed.seq ?? Math.min(maxSeq, 1024);
    if (seq > maxSeq) throw new UsageError(`--seq ${seq} exceeds the model's max_position_embeddings (${maxSeq})`);
    let sparse: ReturnType<typeof exportedSparseLayers> = [];
    if (!parsed.dense) {
      try {
        sparse = exportedSparseLayers(parsed.model, model.config.num_hidden_layers);
      } catch (e) {
        throw new UsageError((e as Error).message.split('\n')[0]);
      }
      for (const { layer, mask } of sparse) model.setAttention(layer, mask);
    }
    let ids: number[];
    let source: string;
    if (parsed.tokenIds) {
      source = parsed.tokenIds;
      ids = parseTokenIds(readText(source), source);
    } else {
      source = parsed.textFile!;
      const text = readText(source);
      const { loadTokenizer } = await import('../data/tokenizer');
      let tokenizer;
      try {
        tokenizer = loadTokenizer(join(parsed.model, 'tokenizer.json'));
      } catch (e) {
        throw new UsageError((e as Error).message.split('\n')[0]);
      }
      ids = tokenizer.encode(text);
    }
    ids.forEach((id, i) => {
      if (id < 0 || id >= V) throw new UsageError(`${source}: token ${i} = ${id} is outside the model's vocabulary [0, ${V})`);
    });
    if (ids.length < 2) throw new UsageError(`${source}: needs at least 2 tokens to predict one, got ${ids.length}`);

    const chunks = windows(ids, seq);
    let total = 0;
    let count = 0;
    // Mixture of experts: evaluate() also reports the routing (usage shares are per batch, so
    // weighting them by tokens gives the shares over every token).
    const moe = (model.config.num_experts ?? 0) > 0;
    let aux = 0;
    const usage: Record<string, number[]> = {};
    // Full-length windows go in batches; the shorter tail window runs alone.
    for (let i = 0; i < chunks.length;) {
      const T = chunks[i].length - 1;
      let j = i;
      while (j < chunks.length && j - i < MAX_BATCH && chunks[j].length - 1 === T) j++;
      const tokens = Int32Array.from(chunks.slice(i, j).flat());
      const B = j - i;
      let loss: number;
      if (moe) {
        const r = await model.evaluate({ tokens, batch: B, seq: T });
        loss = r.loss;
        aux += (r.aux_loss ?? 0) * B * T;
        for (const [layer, shares] of Object.entries(r.expert_usage ?? {})) {
          const sum = (usage[layer] ??= shares.map(() => 0));
          shares.forEach((u, e) => (sum[e] += u * B * T));
        }
      } else {
        loss = await model.loss({ tokens, batch: B, seq: T });
      }
      total += loss * B * T;
      count += B * T;
      i = j;
    }
    const loss = total / count;
    // NaN or infinite weights give a non-finite loss: that is a broken model, not a result.
    if (!Number.isFinite(loss)) throw new Error(`${parsed.model}: the model's loss is ${loss} (its weights hold NaN or infinite values?)`);
    const result: Record<string, unknown> & { tokens: number; loss: number; ppl: number } = { tokens: count, loss, ppl: Math.exp(loss) };
    if (sparse.length > 0) result.sparse_layers = sparse.length;
    if (moe) {
      result.aux_loss = aux / count;
      result.expert_usage = Object.fromEntries(Object.entries(usage).map(([layer, sums]) => [layer, sums.map((x) => x / count)]));
    }
    if (parsed.json) console.log(JSON.stringify(result));
    else {
      const attention = sparse.length > 0 ? `  (block-sparse attention on ${sparse.length} of ${model.config.num_hidden_layers} layers, as config.json declares)` : '';
      console.log(`tokens ${result.tokens}  loss ${result.loss.toFixed(4)} nats  ppl ${result.ppl.toFixed(2)}${attention}`);
    }
    return 0;
  } catch (e) {
    console.error(`sparse-studio eval: ${(e as Error).message.split('\n')[0]}`);
    return e instanceof UsageError ? 2 : 1;
  } finally {
    model.dispose();
  }
}
