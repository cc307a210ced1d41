/**
 * Streaming histograms of each feature's nonzero activations with exact counts and bounded memory: nb
 * equal bins [j·w, (j+1)·w) starting at 0, w a power of two per feature. When a value falls past the last
 * bin, w doubles and neighbouring bins merge (old edges are a superset of the new ones, so no count moves
 * between bins wrongly). The result equals numpy.histogram(acts, bins = w·arange(nb + 1)) for the final w.
 * The first value fixes the starting w: the smallest power of two with value < (nb/2)·w, so it lands in the
 * upper half of the lower half of the bins and later, larger values have room before a doubling; the
 * largest value always lies in the upper three quarters of the range (at least nb/4 bins in use).
 */

export interface Histograms {
  n: number;
  /** bins per feature */
  nb: number;
  /** [n, nb] counts */
  counts: Float64Array;
  /** [n] log2 of the bin width; NaN until the feature fires */
  log2w: Float64Array;
}

export function emptyHistograms(n: number, nb: number): Histograms {
  if (nb < 2 || nb % 2) throw new Error(`histogram bins must be even and ≥ 2, got ${nb}`);
  return { n, nb, counts: new Float64Array(n * nb), log2w: new Float64Array(n).fill(NaN) };
}

/** Adds one positive value to feature i's histogram. */
export function addToHistogram(h: Histograms, i: number, v: number): void {
  const nb = h.nb, base = i * nb;
  let e = h.log2w[i];
  if (Number.isNaN(e)) {
    // smallest power of two w with v < (nb/2)·w
    e = Math.ceil(Math.log2(v / (nb / 2)));
    if (v >= (nb / 2) * 2 ** e) e += 1;
    h.log2w[i] = e;
  }
  let w = 2 ** e;
  while (v >= nb * w) {
    // merge pairs: new bin j = old bins 2j and 2j+1
    for (let j = 0; j < nb / 2; j++) h.counts[base + j] = h.counts[base + 2 * j] + h.counts[base + 2 * j + 1];
    h.counts.fill(0, base + nb / 2, base + nb);
    e += 1;
    w *= 2;
  }
  h.log2w[i] = e;
  h.counts[base + Math.min(nb - 1, Math.floor(v / w))] += 1;
}

/** Feature i's bin width (0 when it never fired) and counts. */
export function histogramOf(h: Histograms, i: number): { width: number; counts: Float64Array } {
  const e = h.log2w[i];
  return { width: Number.isNaN(e) ? 0 : 2 ** e, counts: h.counts.subarray(i * h.nb, (i + 1) * h.nb) };
}
