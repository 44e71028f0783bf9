// Heatmap of a Replace node's block mask at a chosen sequence length, coloured by why each
// block pair is kept (global, window, random, top-k...), with its density.
import { useEffect, useMemo, useRef } from 'react';
import type { MaskSpec } from '../../../core/schema';
import { previewMask, Source, SOURCE_NAMES } from '../mask-preview';
import { selectMaskSeqLen, selectSetPrefs } from '../stores/prefs-store';
import { usePrefs } from '../app/studio-context';

export const SOURCE_COLORS: Record<number, string> = {
  [Source.Skipped]: '#1b2130',
  [Source.Dense]: '#5b6b8c',
  [Source.Diagonal]: '#e8edf6',
  [Source.Global]: '#f2b84b',
  [Source.GlobalRow]: '#e8833a',
  [Source.Window]: '#3ec7b0',
  [Source.Random]: '#a77bf3',
  [Source.TopK]: '#4f9cf7',
  [Source.TopKCandidate]: '#24406b',
};

const SIZE = 240;
const LENGTHS = [256, 512, 1024, 2048, 4096, 8192, 16384];

export function MaskHeatmap({ mask, layer }: { mask: MaskSpec; layer: number }) {
  const seqLen = usePrefs(selectMaskSeqLen);
  const setPrefs = usePrefs(selectSetPrefs);
  const canvas = useRef<HTMLCanvasElement>(null);
  const preview = useMemo(() => {
    const blockOk = Number.isInteger(mask.block_size) && mask.block_size >= 16 && mask.block_size <= 256;
    if (!blockOk) return null;
    if (seqLen / mask.block_size > 1024) return null;
    try { return previewMask(mask, seqLen, layer - 1, 0); } catch { return null; }
  }, [mask, seqLen, layer]);

  useEffect(() => {
    const el = canvas.current;
    if (!el || !preview) return;
    const ctx = el.getContext('2d');
    if (!ctx) return;
    const n = preview.nBlocks;
    const cell = SIZE / n;
    ctx.clearRect(0, 0, SIZE, SIZE);
    for (let q = 0; q < n; q++) {
      for (let k = 0; k <= q; k++) {
        ctx.fillStyle = SOURCE_COLORS[preview.source[q * n + k]];
        ctx.fillRect(k * cell, q * cell, Math.max(cell - (cell > 4 ? 1 : 0), 1), Math.max(cell - (cell > 4 ? 1 : 0), 1));
      }
    }
  }, [preview]);

  const used = preview ? [...new Set(preview.source)].filter((s) => s !== Source.Skipped).sort() : [];
  return (
    <section className="mask-preview" aria-label="mask heatmap">
      <div className="mask-head">
        <label>
          Preview at
          <select aria-label="mask preview length" value={seqLen} onChange={(e) => setPrefs({ maskSeqLen: Number(e.target.value) })}>
            {LENGTHS.map((l) => <option key={l} value={l}>{l} tokens</option>)}
          </select>
        </label>
        {preview && <span className="density" aria-label="mask density">density {(preview.density * 100).toFixed(1)}%</span>}
      </div>
      {preview ? (
        <>
          <canvas ref={canvas} width={SIZE} height={SIZE} role="img"
            aria-label={`block mask of layer ${layer} at ${seqLen} tokens: ${preview.nBlocks} blocks per side, density ${(preview.density * 100).toFixed(1)}%`} />
          <div className="legend">
            {used.map((s) => <span key={s}><i style={{ background: SOURCE_COLORS[s] }} />{SOURCE_NAMES[s]}</span>)}
          </div>
          {preview.topkPerRow.some((k) => k > 0) && (
            <p className="hint">Top-k blocks are chosen at run time from the selector's scores: up to {Math.max(...preview.topkPerRow)} per row among the dark-blue candidates (counted in the density).</p>
          )}
          <p className="hint">Query blocks run down, key blocks across; layer {layer}, first mask head. Random positions follow the engine's splitmix64 seeding.</p>
        </>
      ) : <p className="hint">Fix the block size to see the mask.</p>}
    </section>
  );
}
