/**
 * Per-feature firing statistics on the host: when each feature last fired (for
 * dead-feature tracking over a window of tokens) and how often it fired over
 * the last stretch of training (for sparsity.safetensors).
 */
export interface FeatureStats {
  /** Tokens seen (at the end of the step) when each feature last fired; 0 = never. [d_sae] */
  lastFired: Float64Array;
  /** Firing counts over the counting window. [d_sae] */
  fireCounts: Float64Array;
  /** Tokens in the counting window so far. */
  countedTokens: number;
}

export function newFeatureStats(dSae: number): FeatureStats {
  return { lastFired: new Float64Array(dSae), fireCounts: new Float64Array(dSae), countedTokens: 0 };
}

/**
 * Records one step in place: `fireCountF` [d_sae] firing counts over a batch of
 * `batch` tokens that ended at `seenAfter` tokens; `count` says whether the step
 * falls in the sparsity counting window.
 */
export function recordStep(s: FeatureStats, fireCountF: ArrayLike<number>, batch: number, seenAfter: number, count: boolean): void {
  for (let i = 0; i < fireCountF.length; i++) {
    if (fireCountF[i] > 0) s.lastFired[i] = seenAfter;
    if (count) s.fireCounts[i] += fireCountF[i];
  }
  if (count) s.countedTokens += batch;
}

/** Share of features that have not fired in the last `window` tokens (none counts as dead before `window` tokens). */
export function deadFraction(s: FeatureStats, seen: number, window: number): number {
  if (seen < window) return 0;
  let dead = 0;
  for (let i = 0; i < s.lastFired.length; i++) if (seen - s.lastFired[i] >= window) dead++;
  return dead / s.lastFired.length;
}

/** Firing frequency in the counting window as log10(freq + 1e-10) (SAELens' convention, finite for dead features). [d_sae] */
export function sparsityLog10(s: FeatureStats): Float32Array {
  const n = Math.max(1, s.countedTokens);
  return Float32Array.from(s.fireCounts, (c) => Math.log10(c / n + 1e-10));
}

/** Whether a step starting after `seenBefore` tokens counts toward sparsity: the last `window` tokens of the run. */
export function inCountingWindow(seenBefore: number, totalTokens: number, window: number): boolean {
  return seenBefore >= totalTokens - window;
}
