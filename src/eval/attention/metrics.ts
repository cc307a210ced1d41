/**
 * Comparing one head's attention at one query position, clean against spliced: pure functions on the query row
 * (a probability distribution over the source positions 0..query), in float64.
 */

/** Jensen–Shannon divergence in nats (0 … ln 2): ½ KL(p‖m) + ½ KL(q‖m), m = (p+q)/2, with 0·log 0 = 0. */
export function jsDivergence(p: ArrayLike<number>, q: ArrayLike<number>): number {
  if (p.length !== q.length) throw new Error(`jsDivergence: lengths ${p.length} and ${q.length} differ`);
  let s = 0;
  for (let i = 0; i < p.length; i++) {
    const a = p[i], b = q[i], m = (a + b) / 2;
    if (a > 0) s += a * Math.log(a / m);
    if (b > 0) s += b * Math.log(b / m);
  }
  return Math.max(0, s / 2);
}

/** Index of the largest entry (the first one on ties). */
export function argmax(p: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
  return best;
}

/** Σ p over the positions. */
export function massAt(p: ArrayLike<number>, positions: readonly number[]): number {
  let s = 0;
  for (const i of positions) s += p[i];
  return s;
}

export interface RowComparison {
  js: number;
  argmax: number;
  argmax_same: boolean;
  target_mass: number[];
  /** argmax unchanged and js < threshold */
  agrees: boolean;
}

export function compareRows(clean: ArrayLike<number>, spliced: ArrayLike<number>, targets: readonly (readonly number[])[], threshold: number): RowComparison {
  const js = jsDivergence(clean, spliced);
  const am = argmax(spliced);
  const same = am === argmax(clean);
  return { js, argmax: am, argmax_same: same, target_mass: targets.map((t) => massAt(spliced, t)), agrees: same && js < threshold };
}

/**
 * The minimum k: the smallest tested k (ascending, Infinity = all) at which the head agrees and keeps agreeing
 * at every larger tested k; null when it does not agree at the largest k tested.
 */
export function minAgreeingK(ks: readonly number[], agrees: readonly boolean[]): number | null {
  let best: number | null = null;
  for (let i = ks.length - 1; i >= 0 && agrees[i]; i--) best = ks[i];
  return best;
}

/** The largest drop-lowest k (ascending) up to which every tested k agrees; 0 when the smallest already fails, null when none was tested. */
export function maxAgreeingDrop(ks: readonly number[], agrees: readonly boolean[]): number | null {
  if (!ks.length) return null;
  let best = 0;
  for (let i = 0; i < ks.length && agrees[i]; i++) best = ks[i];
  return best;
}
