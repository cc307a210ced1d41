import type { SaeWeights } from '../sae/weights.js';
import { densityDeciles, matchDictionaries, matchedFraction, splittingTable, DEFAULT_MATCH, type MatchOptions, type DensityGroup, type SplittingTable } from './consistency.js';
import type { SpaceConsistency } from './consistency-types.js';
import { CosineEngine, mean, normalizeRows, transposeHost } from './cosine.js';

/** Per-feature gap under which a sparse matching counts as the full optimum (float32 rounding). */
export const CERTIFIED_GAP = 1e-5;

/** Consistency of two sets of directions (unit rows aND [n, d], bND [m, d]). */
export async function spaceConsistency(aUnit: Float32Array, bUnit: Float32Array, n: number, m: number, d: number, thresholds: readonly number[], opts: MatchOptions = DEFAULT_MATCH):
  Promise<{ result: SpaceConsistency; rowMax: Float32Array; colMax: Float32Array; rowToCol: Int32Array; matchedCos: Float32Array }> {
  const engine = new CosineEngine(bUnit, m, d);
  try {
    const cmp = await engine.compare(aUnit, n, { topK: opts.topK, keepFull: n <= opts.denseMax, onBlock: (r) => opts.onProgress?.('cosines', r) });
    const match = await matchDictionaries(engine, aUnit, bUnit, cmp, opts);
    const gap = Math.max(0, match.cost - match.lowerBound) / n;
    const result: SpaceConsistency = {
      mmcs: mean(cmp.rowMax),
      mmcs_reverse: mean(cmp.colMax),
      mean_matched_cosine: mean(match.matchedCos),
      matching: {
        method: match.method, cost: match.cost, lower_bound: match.lowerBound, max_gap_per_feature: gap,
        certified_optimal: gap <= CERTIFIED_GAP, candidates_per_row: match.topK, edges: match.edges,
        expanded_rows: match.expandedRows, pricing_rounds: match.pricingRounds, priced_rows: match.pricedRows,
      },
    };
    for (const t of thresholds) result[`matched_fraction@${t}`] = matchedFraction(match.matchedCos, t);
    return { result, rowMax: cmp.rowMax, colMax: cmp.colMax, rowToCol: match.rowToCol, matchedCos: match.matchedCos };
  } finally {
    engine.dispose();
  }
}

/**
 * Two SAEs of the same size: decoder rows and encoder columns compared and matched; with both runs' log10
 * firing frequencies, how matching varies with density (decoder matching).
 */
export async function seedPairConsistency(a: SaeWeights, b: SaeWeights, thresholds: readonly number[], sparsity?: { a: Float32Array; b: Float32Array }, opts: MatchOptions = DEFAULT_MATCH):
  Promise<{ decoder: SpaceConsistency; encoder: SpaceConsistency; density: { a: DensityGroup[]; b: DensityGroup[] } | null }> {
  if (a.dIn !== b.dIn || a.dSae !== b.dSae) throw new Error(`seedPairConsistency: shapes differ (${a.dSae}×${a.dIn} vs ${b.dSae}×${b.dIn})`);
  const n = a.dSae, d = a.dIn;
  const dec = await spaceConsistency(normalizeRows(a.W_dec, n, d), normalizeRows(b.W_dec, n, d), n, n, d, thresholds, withPhase(opts, 'decoder'));
  const enc = await spaceConsistency(normalizeRows(transposeHost(a.W_enc, d, n), n, d), normalizeRows(transposeHost(b.W_enc, d, n), n, d), n, n, d, thresholds, withPhase(opts, 'encoder'));
  let density = null;
  if (sparsity) {
    const matchedB = new Float32Array(n);
    dec.rowToCol.forEach((j, i) => { matchedB[j] = dec.matchedCos[i]; });
    density = {
      a: densityDeciles(sparsity.a, dec.rowMax, dec.matchedCos, thresholds),
      b: densityDeciles(sparsity.b, dec.colMax, matchedB, thresholds),
    };
  }
  return { decoder: dec.result, encoder: enc.result, density };
}

function withPhase(opts: MatchOptions, space: string): MatchOptions {
  return { ...opts, onProgress: opts.onProgress && ((phase, r) => opts.onProgress!(`${space} ${phase}`, r)) };
}

/** A smaller SAE's decoder rows against a larger one's: best matches both ways and children per feature. */
export async function sizePairSplitting(small: SaeWeights, large: SaeWeights, childThreshold = 0.5, onBlock?: (rows: number) => void):
  Promise<{ mmcs_small_to_large: number; mmcs_large_to_small: number; splitting: SplittingTable }> {
  if (small.dIn !== large.dIn) throw new Error(`sizePairSplitting: d_in differs (${small.dIn} vs ${large.dIn})`);
  const d = small.dIn;
  const engine = new CosineEngine(normalizeRows(large.W_dec, large.dSae, d), large.dSae, d);
  try {
    const cmp = await engine.compare(normalizeRows(small.W_dec, small.dSae, d), small.dSae, { countAbove: childThreshold, onBlock });
    return { mmcs_small_to_large: mean(cmp.rowMax), mmcs_large_to_small: mean(cmp.colMax), splitting: splittingTable(cmp, childThreshold) };
  } finally {
    engine.dispose();
  }
}
