// Test support: transformers' RoPE parameters (modeling_rope_utils, _compute_<rope_type>_parameters)
// in float64, written from the Python formulas and keyed on rope_type, as an independent check of
// the engine's native/src/rope.cpp. Returns the inverse frequencies and the factor cos/sin are
// multiplied by, for a sequence of seqLen tokens.
import type { ModelConfig } from '../../engine-api';

export interface RopeParameters { invFreq: Float64Array; attentionFactor: number }

type Scaling = Record<string, number | number[] | boolean | string | undefined>;

export function referenceRopeParameters(c: ModelConfig, seqLen: number): RopeParameters {
  const dim = c.head_dim, half = dim / 2;
  const rs = (c.rope_scaling ?? null) as Scaling | null;
  const type = rs ? String(rs.rope_type ?? rs.type) : 'default';
  const plain = (base: number) => Float64Array.from({ length: half }, (_, i) => 1 / base ** ((2 * i) / dim));
  let inv = plain(c.rope_theta);
  let attentionFactor = 1;
  const n = (key: string) => rs![key] as number;
  switch (type) {
    case 'default':
      break;
    case 'linear':
      inv = inv.map((x) => x / n('factor'));
      break;
    case 'dynamic': {
      const M = c.max_position_embeddings, factor = n('factor');
      const L = Math.max(seqLen, M);
      inv = plain(c.rope_theta * (factor * L / M - (factor - 1)) ** (dim / (dim - 2)));
      break;
    }
    case 'yarn': {
      const original = (rs!.original_max_position_embeddings as number | undefined) ?? c.max_position_embeddings;
      const factor = (rs!.factor as number | undefined) ?? c.max_position_embeddings / original;
      const mscale = rs!.mscale as number | undefined, mscaleAll = rs!.mscale_all_dim as number | undefined;
      const getMscale = (s: number, m = 1) => (s <= 1 ? 1 : 0.1 * m * Math.log(s) + 1);
      attentionFactor = (rs!.attention_factor as number | undefined)
        ?? (mscale && mscaleAll ? getMscale(factor, mscale) / getMscale(factor, mscaleAll) : getMscale(factor));
      const betaFast = (rs!.beta_fast as number | undefined) || 32, betaSlow = (rs!.beta_slow as number | undefined) || 1;
      const correction = (rot: number) => (dim * Math.log(original / (rot * 2 * Math.PI))) / (2 * Math.log(c.rope_theta));
      let low = correction(betaFast), high = correction(betaSlow);
      if (rs!.truncate !== false) { low = Math.floor(low); high = Math.ceil(high); }
      low = Math.max(low, 0);
      high = Math.min(high, dim - 1);
      if (low === high) high += 0.001;
      inv = inv.map((x, i) => {
        const extrapolationFactor = 1 - Math.min(1, Math.max(0, (i - low) / (high - low)));
        return (x / factor) * (1 - extrapolationFactor) + x * extrapolationFactor;
      });
      break;
    }
    case 'llama3': {
      const factor = n('factor'), lowF = n('low_freq_factor'), highF = n('high_freq_factor');
      const old = n('original_max_position_embeddings');
      const lowWavelen = old / lowF, highWavelen = old / highF;
      inv = inv.map((x) => {
        const wavelen = 2 * Math.PI / x;
        if (wavelen < highWavelen) return x;
        if (wavelen > lowWavelen) return x / factor;
        const smooth = (old / wavelen - lowF) / (highF - lowF);
        return (1 - smooth) * x / factor + smooth * x;
      });
      break;
    }
    case 'longrope': {
      // MiniCPM's remote code builds its cache for max_position_embeddings (the engine does the same).
      const orig = n('original_max_position_embeddings');
      const factors = (c.max_position_embeddings > orig ? rs!.long_factor : rs!.short_factor) as number[];
      inv = inv.map((x, i) => x / factors[i]);
      const s = c.max_position_embeddings / orig;
      attentionFactor = (rs!.attention_factor as number | undefined) ?? (s <= 1 ? 1 : Math.sqrt(1 + Math.log(s) / Math.log(orig)));
      break;
    }
    default:
      throw new Error(`reference: unknown rope_type ${type}`);
  }
  return { invFreq: inv, attentionFactor };
}
