import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PARAM_KINDS } from '../../core/schema';
import { addon } from '../addon';
import { engine } from '../index';
import { CheckpointError, expectedTensors, MAX_CONFIG_BYTES, MODEL_TYPES, readModelConfig, validateModelConfig } from './config';
import { loadCheckpoint, saveCheckpoint } from './load';
import { encodeSafetensors, readSafetensors, SafetensorsFile } from './safetensors';
import { encodeAs, randomTensors, tinyConfig, writeTinyCheckpoint } from './testing/tiny';

const root = mkdtempSync(join(tmpdir(), 'ckpt-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `m${n++}`);

/** A safetensors file from a raw header object and data size. */
function rawFile(header: unknown, dataBytes: number, headerLenOverride?: number): string {
  const file = join(root, `raw${n++}.safetensors`);
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const out = Buffer.alloc(8 + json.length + dataBytes);
  out.writeBigUInt64LE(BigInt(headerLenOverride ?? json.length));
  json.copy(out, 8);
  writeFileSync(file, out);
  return file;
}

describe('config.json', () => {
  it('fills Hugging Face defaults and keeps explicit values', () => {
    const c = validateModelConfig({ model_type: 'llama', vocab_size: 10, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 });
    expect(c).toMatchObject({ num_key_value_heads: 2, head_dim: 4, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false, rope_scaling: null });
    const q = validateModelConfig({ ...tinyConfig('qwen3', true), head_dim: 6 });
    expect(q.head_dim).toBe(6);
    const m = validateModelConfig({ model_type: 'minicpm', vocab_size: 10, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 });
    expect(m).toMatchObject({ tie_word_embeddings: true, scale_emb: 1, scale_depth: 1, dim_model_base: 8 });
  });

  it.each([
    [{ model_type: 'gpt2' }, 'model_type'],
    [{ vocab_size: 0 }, 'vocab_size'],
    [{ hidden_size: 'x' }, 'hidden_size'],
    [{ num_key_value_heads: 3 }, 'num_key_value_heads'],
    [{ head_dim: 5 }, 'head_dim'],
    [{ rms_norm_eps: -1 }, 'rms_norm_eps'],
    [{ tie_word_embeddings: 'yes' }, 'tie_word_embeddings'],
    [{ hidden_act: 'gelu' }, 'hidden_act'],
    [{ rope_scaling: { rope_type: 'ntk', factor: 2 } }, 'rope_scaling.rope_type'],
    [{ rope_scaling: { rope_type: 'longrope', short_factor: [1], long_factor: [1, 1], original_max_position_embeddings: 8 } }, 'rope_scaling.short_factor'],
  ])('rejects %j naming %s', (patch, field) => {
    expect(() => validateModelConfig({ ...tinyConfig('llama', false), ...patch }, 'x/config.json')).toThrow(new RegExp(`^x/config\\.json: ${field.replace('.', '\\.')}: `));
  });

  it.each([
    ['num_hidden_layers', 100000000],
    ['vocab_size', 2 ** 31],
    ['hidden_size', 1e6],
    ['intermediate_size', 2 ** 20],
    ['num_attention_heads', 4096],
    ['head_dim', 4096],
    ['max_position_embeddings', 2 ** 30],
  ])('caps %s (%d) with one line', (field, value) => {
    expect(() => validateModelConfig({ ...tinyConfig('llama', false), num_key_value_heads: undefined, [field]: value }, 'x/config.json'))
      .toThrow(new RegExp(`^x/config\\.json: ${field}: ${value} exceeds the supported maximum \\d+$`));
  });

  it('reads config.json only if it is a regular file of bounded size', () => {
    const dir = fresh();
    writeTinyCheckpoint(dir, tinyConfig('llama', false));
    const file = join(dir, 'config.json');
    unlinkSync(file);
    mkdirSync(file);
    expect(() => readModelConfig(dir)).toThrow(/config\.json: is a directory$/);
    rmSync(file, { recursive: true });
    execFileSync('mkfifo', [file]);
    expect(() => readModelConfig(dir)).toThrow(/config\.json: not a regular file$/); // and does not hang
    unlinkSync(file);
    writeFileSync(file, JSON.stringify({ ...tinyConfig('llama', false), pad: ' '.repeat(MAX_CONFIG_BYTES) }));
    expect(() => readModelConfig(dir)).toThrow(/config\.json: file is \d+ bytes; at most 16777216 are read$/);
  });

  it('reports an unreadable or non-JSON config.json with its path', () => {
    const dir = fresh();
    expect(() => readModelConfig(dir)).toThrow(/config\.json: cannot read \(ENOENT\)/);
    writeTinyCheckpoint(dir, tinyConfig('llama', false));
    writeFileSync(join(dir, 'config.json'), '{"model_type": ');
    expect(() => readModelConfig(dir)).toThrow(/config\.json: not valid JSON/);
  });
});

describe('tensor layout', () => {
  it('is the engine model\'s tensors, for every family, tied and untied', () => {
    for (const type of MODEL_TYPES) {
      for (const tied of [false, true]) {
        const config = tinyConfig(type, tied);
        const model = engine.createModel(config, { seed: 1 });
        expect(expectedTensors(config)).toEqual(model.tensors().map(({ name, shape }) => ({ name, shape })));
        model.dispose();
      }
    }
    expect(expectedTensors(tinyConfig('qwen3', false)).filter((t) => t.name.endsWith('.q_norm.weight'))).toHaveLength(2);
  });

  it('has one list of parameter kinds: the engine\'s, which the pipeline schema repeats', () => {
    expect(addon().paramKinds()).toEqual([...PARAM_KINDS]);
  });
});

describe('safetensors', () => {
  it('round-trips F32 with metadata and 8-byte aligned data', () => {
    const file = join(root, 'rt.safetensors');
    const a = new Float32Array([1.5, -2, 3e-8, 1e30]);
    writeFileSync(file, encodeSafetensors([{ name: 'a', shape: [2, 2], data: a }, { name: 'e', shape: [0], data: new Float32Array(0) }], { k: 'v' }));
    const st = SafetensorsFile.open(file);
    expect(st.metadata).toEqual({ k: 'v' });
    expect(Array.from(st.read('a').data)).toEqual(Array.from(a));
    expect(st.read('e').data.length).toBe(0);
    st.close();
    expect(Number(readFileSync(file).readBigUInt64LE(0)) % 8).toBe(0);
  });

  it('widens F16 and BF16 to float32', () => {
    const values = new Float32Array([0, 1, -2.5, 0.333, 6e-6, 1000, -0.0001]);
    for (const [dtype, tol] of [['F16', 1e-3], ['BF16', 8e-3]] as const) {
      const file = join(root, `w-${dtype}.safetensors`);
      writeFileSync(file, encodeAs([{ name: 't', shape: [7], data: values }], dtype));
      const got = readSafetensors(file).get('t')!.data;
      values.forEach((v, i) => expect(Math.abs(got[i] - v)).toBeLessThanOrEqual(tol * Math.abs(v) + 1e-7));
    }
    // exact bit patterns: f16 0x3c00 = 1, 0xc000 = -2, 0x0001 = 2^-24; bf16 0x3f80 = 1
    const f16 = rawFile({ t: { dtype: 'F16', shape: [3], data_offsets: [0, 6] } }, 6);
    const buf = readFileSync(f16);
    const at = buf.length - 6;
    buf.writeUInt16LE(0x3c00, at); buf.writeUInt16LE(0xc000, at + 2); buf.writeUInt16LE(0x0001, at + 4);
    writeFileSync(f16, buf);
    expect(Array.from(readSafetensors(f16).get('t')!.data)).toEqual([1, -2, 2 ** -24]);
  });

  it.each([
    ['header length beyond the file', () => rawFile({}, 0, 1 << 20), /header length 1048576 goes beyond the file/],
    ['a file shorter than the length field', () => { const f = join(root, 'short.safetensors'); writeFileSync(f, Buffer.alloc(3)); return f; }, /too short/],
    ['a header that is not JSON', () => rawFile('{"a": [1,', 0), /header is not valid JSON/],
    ['a header that is an array', () => rawFile('[1]', 0), /header must be a JSON object/],
    ['offsets outside the data', () => rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8), /tensor w: data_offsets \[0, 16\] outside the data \(8 bytes\)/],
    ['offsets that disagree with the shape', () => rawFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8), /tensor w: data_offsets span 8 bytes but F32 \[3\] needs 12/],
    ['overlapping tensors', () => rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12), /tensors a and b overlap/],
    ['an unknown dtype', () => rawFile({ w: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, 2), /tensor w: unsupported dtype "F8_E4M3"/],
    ['a bad shape', () => rawFile({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }, 0), /tensor w: shape must be/],
  ])('rejects %s with one line', (_what, make, message) => {
    const file = make();
    let error: unknown;
    try { SafetensorsFile.open(file); } catch (e) { error = e; }
    expect(error).toBeInstanceOf(CheckpointError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).toContain(file);
    expect((error as Error).message).not.toContain('\n');
  });
});

describe('checkpoint directories', () => {
  const config = tinyConfig('qwen3', false);

  it('loads single-file, sharded and half-precision checkpoints to the same tensors', () => {
    const a = fresh(), b = fresh(), c = fresh();
    writeTinyCheckpoint(a, config, { seed: 5 });
    writeTinyCheckpoint(b, config, { seed: 5, shards: 3 });
    writeTinyCheckpoint(c, config, { seed: 5, dtype: 'BF16' });
    const ca = loadCheckpoint(a), cb = loadCheckpoint(b), cc = loadCheckpoint(c);
    expect([...ca.tensors.keys()]).toEqual(expectedTensors(config).map((t) => t.name));
    for (const [name, t] of ca.tensors) {
      expect(cb.tensors.get(name)).toEqual(t);
      const h = cc.tensors.get(name)!;
      t.forEach((v, i) => expect(Math.abs(h[i] - v)).toBeLessThanOrEqual(4e-3 * Math.abs(v) + 1e-30));
    }
  });

  it('saves config.json + model.safetensors that load back bit-identically', () => {
    const a = fresh(), out = fresh();
    writeTinyCheckpoint(a, config, { seed: 9 });
    const ck = loadCheckpoint(a);
    saveCheckpoint(out, ck.config, ck.tensors);
    const back = loadCheckpoint(out);
    expect(back.config).toEqual(ck.config);
    expect(back.tensors).toEqual(ck.tensors);
  });

  it('writes back every config.json key the engine does not use (sparse_config, auto_map, ...), through engine save', async () => {
    const a = fresh(), out = fresh(), again = fresh();
    writeTinyCheckpoint(a, config, { seed: 9 });
    const source = JSON.parse(readFileSync(join(a, 'config.json'), 'utf8'));
    const extra = {
      sparse_config: { kernel_size: 32, kernel_stride: 16, init_blocks: 1, block_size: 64, window_size: 2048, topk: 64, use_nope: false, dense_len: 8192 },
      auto_map: { AutoConfig: 'configuration_minicpm.MiniCPMConfig', AutoModelForCausalLM: 'modeling_minicpm.MiniCPMForCausalLM' },
      bos_token_id: 1, eos_token_id: [2, 73440], transformers_version: '4.56.0', use_cache: true, attention_bias: false, passthrough_nested: { a: [1, { b: null }] },
    };
    writeFileSync(join(a, 'config.json'), JSON.stringify({ ...source, ...extra }));
    expect(readModelConfig(a).passthrough).toEqual(extra);
    const model = await engine.loadModel(a);
    await model.save(out);
    model.dispose();
    const saved = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(saved).toMatchObject(extra);
    expect(saved.passthrough).toBeUndefined();
    // Every source key comes back (engine keys with the engine's values).
    expect(Object.keys(saved)).toEqual(expect.arrayContaining(Object.keys({ ...source, ...extra })));
    // A second load and save changes nothing.
    const ck = loadCheckpoint(out);
    saveCheckpoint(again, ck.config, ck.tensors);
    expect(readFileSync(join(again, 'config.json'), 'utf8')).toBe(readFileSync(join(out, 'config.json'), 'utf8'));
  });

  it('checks the bytes config.json implies against the safetensors data before reading a tensor', () => {
    const dir = fresh();
    writeTinyCheckpoint(dir, config);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, intermediate_size: 4096 }));
    expect(() => loadCheckpoint(dir)).toThrow(/config\.json: describes tensors of at least \d+ bytes, but the safetensors data holds \d+ bytes$/);
  });

  function corrupt(edit: (tensors: ReturnType<typeof randomTensors>) => ReturnType<typeof randomTensors>): string {
    const dir = fresh();
    writeTinyCheckpoint(dir, config);
    writeFileSync(join(dir, 'model.safetensors'), encodeAs(edit(randomTensors(config, 1)), 'F32'));
    return dir;
  }

  it('names a missing tensor', () => {
    const dir = corrupt((ts) => ts.filter((t) => t.name !== 'model.layers.1.mlp.up_proj.weight'));
    expect(() => loadCheckpoint(dir)).toThrow(/model\.safetensors: missing tensor model\.layers\.1\.mlp\.up_proj\.weight$/);
  });

  it('names an unexpected tensor', () => {
    const dir = corrupt((ts) => [...ts, { name: 'model.layers.7.extra.weight', shape: [2], data: new Float32Array(2) }]);
    expect(() => loadCheckpoint(dir)).toThrow(/unexpected tensor model\.layers\.7\.extra\.weight/);
  });

  it('names a shape that disagrees with config.json', () => {
    const dir = corrupt((ts) => ts.map((t) => (t.name === 'model.norm.weight' ? { ...t, shape: [2, 8] } : t)));
    expect(() => loadCheckpoint(dir)).toThrow(/tensor model\.norm\.weight: shape \[2,8\] disagrees with config\.json \(expected \[16\]\)/);
  });

  it('accepts a redundant lm_head in a tied checkpoint and ignores rotary buffers', () => {
    const tied = tinyConfig('llama', true);
    const dir = fresh();
    writeTinyCheckpoint(dir, tied);
    const extra = [...randomTensors(tied, 1), { name: 'lm_head.weight', shape: [37, 16], data: new Float32Array(37 * 16) },
      { name: 'model.layers.0.self_attn.rotary_emb.inv_freq', shape: [2], data: new Float32Array(2) }];
    writeFileSync(join(dir, 'model.safetensors'), encodeAs(extra, 'F32'));
    expect(loadCheckpoint(dir).tensors.has('lm_head.weight')).toBe(false);
  });

  it('checks the shard index: bad JSON, a missing shard, a tensor listed but absent, an escaping path', () => {
    const dir = fresh();
    writeTinyCheckpoint(dir, config, { shards: 2 });
    const indexFile = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexFile, 'utf8'));
    writeFileSync(indexFile, '{');
    expect(() => loadCheckpoint(dir)).toThrow(/model\.safetensors\.index\.json: not valid JSON/);
    writeFileSync(indexFile, JSON.stringify({ weight_map: { ...index.weight_map, 'model.norm.weight': '../evil.safetensors' } }));
    expect(() => loadCheckpoint(dir)).toThrow(/outside the model directory/);
    writeFileSync(indexFile, JSON.stringify({ weight_map: { ...index.weight_map, 'ghost.weight': 'model-00001-of-00002.safetensors' } }));
    expect(() => loadCheckpoint(dir)).toThrow(/tensor ghost\.weight listed in model\.safetensors\.index\.json is not in the shard/);
    writeFileSync(indexFile, JSON.stringify(index));
    unlinkSync(join(dir, 'model-00002-of-00002.safetensors'));
    expect(() => loadCheckpoint(dir)).toThrow(/model-00002-of-00002\.safetensors: cannot open \(ENOENT\)/);
  });

  it('reports a directory without weights', () => {
    const dir = fresh();
    writeTinyCheckpoint(dir, config);
    unlinkSync(join(dir, 'model.safetensors'));
    expect(() => loadCheckpoint(dir)).toThrow(/no model\.safetensors or model\.safetensors\.index\.json/);
  });

  it('survives truncation at every point of a file', () => {
    const dir = fresh();
    writeTinyCheckpoint(dir, tinyConfig('llama', true, { num_hidden_layers: 1 }));
    const file = join(dir, 'model.safetensors');
    const full = readFileSync(file);
    for (const cut of [0, 4, 8, 20, Math.floor(full.length / 2), full.length - 1]) {
      writeFileSync(file, full.subarray(0, cut));
      expect(() => loadCheckpoint(dir)).toThrow(CheckpointError);
    }
  });
});
