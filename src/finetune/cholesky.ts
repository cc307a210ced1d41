/**
 * Dense symmetric positive-definite solves in float64, for the d_sae×d_sae
 * normal equations of feature_scale. Matrices are row-major n×n Float64Arrays.
 */

export interface CholeskyResult {
  ok: boolean;
  /**
   * min over k of L_kk² / A_kk: the share of feature k's own norm left after
   * projecting out features 0..k−1 (1 − R²). Near 0 = (nearly) collinear.
   */
  minPivotRatio: number;
  /** Where it failed (first non-positive or too-small pivot), or -1. */
  failedAt: number;
}

/**
 * Overwrites the lower triangle of A with L (A = L·Lᵀ); the upper triangle is
 * left as is. Fails (ok false) when a pivot's ratio falls below `minRatio`,
 * which catches singular and numerically singular systems before they yield
 * huge or non-finite solutions.
 */
export function choleskyInPlace(A: Float64Array, n: number, minRatio = 1e-12): CholeskyResult {
  let minPivotRatio = Infinity;
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    for (let j = 0; j <= i; j++) {
      const rj = j * n;
      let s = A[ri + j];
      for (let k = 0; k < j; k++) s -= A[ri + k] * A[rj + k];
      if (i === j) {
        // Row i's diagonal is written last, so A[ri + i] still holds the original A_ii here.
        const aii = A[ri + i];
        const ratio = aii > 0 ? s / aii : -Infinity;
        if (!(s > 0) || !Number.isFinite(s) || ratio < minRatio) return { ok: false, minPivotRatio: Math.min(minPivotRatio, ratio), failedAt: i };
        minPivotRatio = Math.min(minPivotRatio, ratio);
        A[ri + i] = Math.sqrt(s);
      } else {
        A[ri + j] = s / A[rj + j];
      }
    }
  }
  return { ok: true, minPivotRatio, failedAt: -1 };
}

/** Solves L·Lᵀ·x = b given the factor from choleskyInPlace. Returns x (b is not modified). */
export function choleskySolve(L: Float64Array, n: number, b: Float64Array): Float64Array {
  const y = Float64Array.from(b);
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    let s = y[i];
    for (let k = 0; k < i; k++) s -= L[ri + k] * y[k];
    y[i] = s / L[ri + i];
  }
  for (let i = n - 1; i >= 0; i--) {
    let s = y[i];
    for (let k = i + 1; k < n; k++) s -= L[k * n + i] * y[k];
    y[i] = s / L[i * n + i];
  }
  return y;
}
