import { join } from 'node:path';
import { writeJsonAtomic } from '../io/atomic.js';
import { writeArrowTable, type ArrowColumn } from '../io/arrow.js';
import type { FeatureAcc } from './accumulate.js';
import { histogramOf } from './histogram.js';
import type { LogitEffects } from './logit_effects.js';
import { sortedTopK } from './topk.js';
import { CONTEXTS_ARROW, FEATURES_ARROW, FEATURES_JSON, type FeaturesMeta } from './format.js';

/** The accumulator (and logit effects) as the columns of features.arrow and feature_contexts.arrow (format.ts). Pure. */
export function featureColumns(acc: FeatureAcc, windows: readonly Int32Array[], logits: LogitEffects | null): {
  features: Record<string, ArrowColumn>; contexts: Record<string, ArrowColumn>; contextRows: number;
} {
  const { n, T, C, contextWindow: cw } = acc;
  const k = acc.heaps.k, nb = acc.hist.nb;
  const feature = Int32Array.from({ length: n }, (_, i) => i);
  const frequency = Float64Array.from(acc.fired, (f) => (acc.tokens ? f / acc.tokens : NaN));
  const meanAct = Float32Array.from(acc.sum, (s, i) => (acc.fired[i] ? s / acc.fired[i] : NaN));
  const ceDiffActive = Float32Array.from(acc.ceDiffSum, (s, i) => (acc.ceDiffCount[i] ? s / acc.ceDiffCount[i] : NaN));
  const histWidth = new Float32Array(n), histCounts = new Int32Array(n * nb);
  const topActs = new Float32Array(n * k).fill(NaN), topSeq = new Int32Array(n * k).fill(-1), topPos = new Int32Array(n * k).fill(-1), topTok = new Int32Array(n * k).fill(-1);
  const rows: { f: number; r: number; v: number; p: number; slot: number }[] = [];
  for (let i = 0; i < n; i++) {
    const h = histogramOf(acc.hist, i);
    histWidth[i] = h.width;
    histCounts.set(h.counts, i * nb);
    const s = sortedTopK(acc.heaps, i);
    s.values.forEach((v, r) => {
      const p = s.positions[r], w = Math.floor(p / T), t = p % T;
      topActs[i * k + r] = v;
      topSeq[i * k + r] = w;
      topPos[i * k + r] = t;
      topTok[i * k + r] = windows[w][t];
      rows.push({ f: i, r, v, p, slot: s.slots[r] });
    });
  }
  const features: Record<string, ArrowColumn> = {
    feature, fired: Float64Array.from(acc.fired), frequency, max_act: Float32Array.from(acc.max, (m, i) => (acc.fired[i] ? m : NaN)), mean_act: meanAct,
    ce_diff_active: ceDiffActive, hist_width: histWidth, hist_counts: { listSize: nb, values: histCounts },
    top_acts: { listSize: k, values: topActs }, top_seq: { listSize: k, values: topSeq }, top_pos: { listSize: k, values: topPos }, top_token: { listSize: k, values: topTok },
  };
  if (logits) {
    const L = logits.k;
    Object.assign(features, {
      logit_pos_ids: { listSize: L, values: logits.topIds }, logit_pos_values: { listSize: L, values: logits.topValues },
      logit_neg_ids: { listSize: L, values: logits.bottomIds }, logit_neg_values: { listSize: L, values: logits.bottomValues },
      logit_hist_min: logits.histMin, logit_hist_max: logits.histMax,
      logit_hist_counts: { listSize: logits.bins, values: Int32Array.from(logits.histCounts) },
    });
  }
  const m = rows.length;
  const cTok = new Int32Array(m * C).fill(-1), cAct = new Float32Array(m * C);
  rows.forEach((row, j) => {
    const w = Math.floor(row.p / T), t = row.p % T;
    for (let c = 0; c < C; c++) {
      const tt = t - cw + c;
      if (tt >= 0 && tt < T) cTok[j * C + c] = windows[w][tt];
    }
    cAct.set(acc.ctx.subarray((row.f * k + row.slot) * C, (row.f * k + row.slot + 1) * C), j * C);
  });
  const contexts: Record<string, ArrowColumn> = {
    feature: Int32Array.from(rows, (x) => x.f), rank: Int32Array.from(rows, (x) => x.r),
    seq: Int32Array.from(rows, (x) => Math.floor(x.p / T)), pos: Int32Array.from(rows, (x) => x.p % T),
    activation: Float32Array.from(rows, (x) => x.v), tokens: { listSize: C, values: cTok }, acts: { listSize: C, values: cAct },
  };
  return { features, contexts, contextRows: m };
}

/** Writes features.arrow, feature_contexts.arrow and features.json (last) into a run's eval folder. */
export function writeFeatureFiles(runDir: string, meta: FeaturesMeta, acc: FeatureAcc, windows: readonly Int32Array[], logits: LogitEffects | null): void {
  const { features, contexts, contextRows } = featureColumns(acc, windows, logits);
  writeArrowTable(join(runDir, FEATURES_ARROW), features, acc.n);
  writeArrowTable(join(runDir, CONTEXTS_ARROW), contexts, contextRows);
  writeJsonAtomic(join(runDir, FEATURES_JSON), meta);
}
