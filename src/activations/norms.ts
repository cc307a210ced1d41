/**
 * Per-hook activation-norm statistics (docs/formats.md, "Activation cache"): harvest records, per shard and for
 * the whole cache, the count, sum, sum of squares, min and max of the rows' L2 norms; a reader checks each
 * shard's rows against them. A NaN or ±Inf is an error naming the shard, row, column and hook (instead of a loss
 * that "became NaN" later); rows whose norm strays far outside the recorded range (finite garbage such as
 * ±1e38, or a shard from another cache) are a warning.
 */
import { UserError } from '../io/errors.js';

/** Statistics of the L2 norms of a set of rows (mergeable: sums, not means). */
export interface NormStats {
  rows: number;
  sum: number;
  sum_sq: number;
  min: number;
  max: number;
}

/** A cache's per-hook summary, as manifest.json's activation_norms holds it. */
export interface NormSummary {
  rows: number;
  mean: number;
  std: number;
  min: number;
  max: number;
}

/** A row is flagged when its norm is more than this factor above the recorded max (or below the min). */
export const STRAY_FACTOR = 10;

/** Norm statistics of xRD [rows, d] row-major (float64 sums: float32 values cannot overflow them). */
export function rowNormStats(xRD: Float32Array, d: number): NormStats {
  const s: NormStats = { rows: 0, sum: 0, sum_sq: 0, min: Infinity, max: 0 };
  for (let o = 0; o < xRD.length; o += d) {
    let q = 0;
    for (let j = o; j < o + d; j++) q += xRD[j] * xRD[j];
    const n = Math.sqrt(q);
    s.rows++;
    s.sum += n;
    s.sum_sq += q;
    if (n < s.min) s.min = n;
    if (n > s.max) s.max = n;
  }
  if (s.rows === 0) s.min = 0;
  return s;
}

/** The first value of xRD [rows, d] that is not finite or exceeds `limit` in magnitude, if any. */
export function firstBadValue(xRD: Float32Array, d: number, limit = Infinity): { row: number; col: number; value: number } | undefined {
  for (let i = 0; i < xRD.length; i++) {
    const v = xRD[i];
    if (!(Math.abs(v) <= limit)) return { row: Math.floor(i / d), col: i % d, value: v };
  }
  return undefined;
}

export function mergeNormStats(all: readonly NormStats[]): NormStats {
  const s: NormStats = { rows: 0, sum: 0, sum_sq: 0, min: Infinity, max: 0 };
  for (const a of all) {
    s.rows += a.rows;
    s.sum += a.sum;
    s.sum_sq += a.sum_sq;
    s.min = Math.min(s.min, a.min);
    s.max = Math.max(s.max, a.max);
  }
  if (s.rows === 0) s.min = 0;
  return s;
}

export function normSummary(s: NormStats): NormSummary {
  const mean = s.rows ? s.sum / s.rows : 0;
  return { rows: s.rows, mean, std: s.rows ? Math.sqrt(Math.max(0, s.sum_sq / s.rows - mean * mean)) : 0, min: s.min, max: s.max };
}

/** The cache's activation_norms from its shards' records; undefined when a shard has none (an older cache). */
export function cacheNorms(shards: readonly { norms?: Record<string, NormStats> }[], hooks: readonly string[]): Record<string, NormSummary> | undefined {
  if (!shards.length || shards.some((s) => !s.norms || hooks.some((h) => !s.norms![h]))) return undefined;
  return Object.fromEntries(hooks.map((h) => [h, normSummary(mergeNormStats(shards.map((s) => s.norms![h])))]));
}

const warned = new Set<string>();

/**
 * Checks a shard's rows of one hook as they are read: throws a UserError at the first non-finite value; warns
 * (once per shard and hook in a process) when rows stray outside `range`. `firstRow`: the shard's first row in
 * the cache. One pass, d multiply-adds per row.
 */
export function checkShardRows(xRD: Float32Array, d: number, where: { path: string; hook: string; firstRow: number }, range: Pick<NormSummary, 'min' | 'max'> | undefined, warn: (msg: string) => void): void {
  const hi = range ? range.max * STRAY_FACTOR : Infinity, lo = range ? range.min / STRAY_FACTOR : 0;
  let strays = 0, example = -1, exampleNorm = 0;
  for (let o = 0, r = 0; o < xRD.length; o += d, r++) {
    let q = 0;
    for (let j = o; j < o + d; j++) q += xRD[j] * xRD[j];
    if (!Number.isFinite(q)) {
      let c = 0;
      while (Number.isFinite(xRD[o + c])) c++;
      throw new UserError(`${where.path}: hook "${where.hook}" has ${xRD[o + c]} at row ${r} (row ${where.firstRow + r} of the cache), column ${c}. ` +
        `The cache is damaged, or harvest overflowed float16 (past ±65504: harvest with dtype: float32). Re-harvest it (\`sae-train harvest --fresh\`) before training on it.`);
    }
    const n = Math.sqrt(q);
    if (n > hi || n < lo) {
      if (strays++ === 0) (example = r), (exampleNorm = n);
    }
  }
  const key = `${where.path}\u0000${where.hook}`;
  if (strays && range && !warned.has(key)) {
    warned.add(key);
    warn(`${where.path}: hook "${where.hook}": ${strays} of ${xRD.length / d} rows have an activation norm more than ${STRAY_FACTOR}× outside the range harvest recorded (${range.min.toPrecision(4)}–${range.max.toPrecision(4)}, manifest.json activation_norms), e.g. row ${example} with norm ${exampleNorm.toPrecision(4)}. ` +
      `The shard may be damaged or come from another model or cache; training on it will be dominated by those rows. Check it, or re-harvest the cache.`);
  }
}
