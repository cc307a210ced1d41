/**
 * Descriptive statistics on host arrays, as numpy/scipy define them (tests compare against both).
 * Pure functions; NaN where a statistic is undefined (JSON writes it as null).
 */

/** Quantile q ∈ [0, 1] of sorted values, linear interpolation between order statistics (numpy's default). */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * Math.min(1, Math.max(0, q));
  const lo = Math.floor(h), hi = Math.min(n - 1, lo + 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/** numpy.quantile(values, qs): one value per q. */
export function quantiles(values: ArrayLike<number>, qs: readonly number[]): number[] {
  const sorted = Float64Array.from(values).sort();
  return qs.map((q) => quantileSorted(sorted, q));
}

/** Pearson's r of two equal-length samples (scipy.stats.pearsonr's statistic); NaN if either is constant. */
export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  if (n !== b.length) throw new Error(`pearson: lengths differ (${n} vs ${b.length})`);
  if (n < 2) return NaN;
  let ma = 0, mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i];
    mb += b[i];
  }
  ma /= n;
  mb /= n;
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i] - ma, db = b[i] - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  if (saa === 0 || sbb === 0) return NaN;
  return Math.max(-1, Math.min(1, sab / Math.sqrt(saa * sbb)));
}

/** Ranks 1..n, ties given their average rank (scipy.stats.rankdata's "average"). */
export function ranks(values: ArrayLike<number>): Float64Array {
  const n = values.length;
  const idx = Array.from({ length: n }, (_, i) => i).sort((i, j) => values[i] - values[j]);
  const r = new Float64Array(n);
  for (let s = 0; s < n; ) {
    let e = s;
    while (e + 1 < n && values[idx[e + 1]] === values[idx[s]]) e++;
    const avg = (s + e) / 2 + 1;
    for (let k = s; k <= e; k++) r[idx[k]] = avg;
    s = e + 1;
  }
  return r;
}

/** Spearman's ρ: Pearson's r of the average ranks (scipy.stats.spearmanr's statistic). */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return pearson(ranks(a), ranks(b));
}

/**
 * Share of the total positive mass Σ max(v, 0) contributed by the largest ⌈fraction·n⌉ values
 * (their positive parts). 0 when nothing is positive.
 */
export function shareOfLargest(values: ArrayLike<number>, fraction: number): number {
  const n = values.length;
  if (n === 0) return NaN;
  const sorted = Float64Array.from(values).sort().reverse();
  const k = Math.min(n, Math.max(1, Math.ceil(fraction * n - 1e-9)));
  let top = 0, total = 0;
  for (let i = 0; i < n; i++) {
    const v = Math.max(0, sorted[i]);
    total += v;
    if (i < k) top += v;
  }
  return total > 0 ? top / total : 0;
}

/** Mean of a sample (NaN when empty). */
export function mean(values: ArrayLike<number>): number {
  if (values.length === 0) return NaN;
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  return s / values.length;
}
