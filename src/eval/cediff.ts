import type { CeDiffDistribution } from './types.js';
import { quantiles, shareOfLargest } from './stats.js';

/**
 * Per-token and per-sequence CE-diff (ce_spliced − ce_clean). Inputs are per predicted token in window
 * order, [windows, T−1]: entry (w, t) is the prediction of token t+1 of window w from positions 0..t.
 * Pure.
 */

export const CE_DIFF_QUANTILES = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99];

export function ceDiffs(ceClean: Float32Array, ceSpliced: Float32Array): Float32Array {
  const d = new Float32Array(ceClean.length);
  for (let i = 0; i < d.length; i++) d[i] = ceSpliced[i] - ceClean[i];
  return d;
}

/** Mean ce_diff per window: diff [windows·(T−1)] → [windows]. */
export function perSequenceMeans(diff: ArrayLike<number>, predictedPerWindow: number): number[] {
  const W = diff.length / predictedPerWindow;
  const out = new Array<number>(W);
  for (let w = 0; w < W; w++) {
    let s = 0;
    for (let t = 0; t < predictedPerWindow; t++) s += diff[w * predictedPerWindow + t];
    out[w] = s / predictedPerWindow;
  }
  return out;
}

/** Indices of the n largest values, largest first. */
export function largestIndices(values: ArrayLike<number>, n: number): number[] {
  const idx = Array.from({ length: values.length }, (_, i) => i);
  idx.sort((a, b) => values[b] - values[a] || a - b);
  return idx.slice(0, n);
}

export interface WorstTokenOptions {
  /** How many tokens to list. */
  count: number;
  /** Tokens of context before each. */
  contextTokens: number;
  /** Token ids → text (GPT-2's BPE); without it ids are shown as "<id>". */
  decode?: (ids: readonly number[]) => string;
}

/**
 * The distribution of per-token CE-diff. windows are the eval token windows (length T each).
 * worst_tokens: `token` is the predicted token's text, `context` the text of up to contextTokens tokens
 * before it (what the model saw), `pos` its position in the window (1..T−1).
 */
export function ceDiffDistribution(ceClean: Float32Array, ceSpliced: Float32Array, windows: readonly Int32Array[], opts: WorstTokenOptions): CeDiffDistribution {
  const T = windows[0].length;
  const diff = ceDiffs(ceClean, ceSpliced);
  const qs = quantiles(diff, CE_DIFF_QUANTILES);
  const decode = opts.decode ?? ((ids: readonly number[]) => ids.map((i) => `<${i}>`).join(''));
  const worst = largestIndices(diff, opts.count).map((i) => {
    const seq = Math.floor(i / (T - 1));
    const pos = (i % (T - 1)) + 1;
    const w = windows[seq];
    return {
      seq, pos,
      token: decode([w[pos]]),
      context: decode(Array.from(w.subarray(Math.max(0, pos - opts.contextTokens), pos))),
      ce_clean: ceClean[i], ce_spliced: ceSpliced[i], ce_diff: diff[i],
    };
  });
  return {
    quantiles: CE_DIFF_QUANTILES.map((q, i) => ({ q, value: qs[i] })),
    share_worst_1pct: shareOfLargest(diff, 0.01),
    share_worst_10pct: shareOfLargest(diff, 0.1),
    per_sequence: perSequenceMeans(diff, T - 1),
    worst_tokens: worst,
  };
}
