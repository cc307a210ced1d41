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
 *
 * Row-oriented (Cholesky–Banachiewicz), four rows at a time: each earlier row
 * is streamed from memory once per four rows, which made n = 2048…4096 two to
 * four times faster than one row at a time, with the same operations in the
 * same order (bit-identical factors).
 */
export function choleskyInPlace(A: Float64Array, n: number, minRatio = 1e-12): CholeskyResult {
  let minPivotRatio = Infinity;
  /** Columns [jFrom, i] of row i, given rows < i and columns < jFrom of row i done. Returns false on a bad pivot. */
  const finishRow = (i: number, jFrom: number): boolean => {
    const ri = i * n;
    for (let j = jFrom; j <= i; j++) {
      const rj = j * n;
      let s = A[ri + j];
      for (let k = 0; k < j; k++) s -= A[ri + k] * A[rj + k];
      if (j < i) {
        A[ri + j] = s / A[rj + j];
        continue;
      }
      // Row i's diagonal is written last, so A[ri + i] still holds the original A_ii here.
      const aii = A[ri + i];
      const ratio = aii > 0 ? s / aii : -Infinity;
      minPivotRatio = Math.min(minPivotRatio, ratio);
      if (!(s > 0) || !Number.isFinite(s) || ratio < minRatio) return false;
      A[ri + i] = Math.sqrt(s);
    }
    return true;
  };
  let i0 = 0;
  for (; i0 + 4 <= n; i0 += 4) {
    const r0 = i0 * n, r1 = r0 + n, r2 = r1 + n, r3 = r2 + n;
    for (let j = 0; j < i0; j++) {
      const rj = j * n;
      let s0 = A[r0 + j], s1 = A[r1 + j], s2 = A[r2 + j], s3 = A[r3 + j];
      for (let k = 0; k < j; k++) {
        const l = A[rj + k];
        s0 -= A[r0 + k] * l;
        s1 -= A[r1 + k] * l;
        s2 -= A[r2 + k] * l;
        s3 -= A[r3 + k] * l;
      }
      const d = A[rj + j];
      A[r0 + j] = s0 / d;
      A[r1 + j] = s1 / d;
      A[r2 + j] = s2 / d;
      A[r3 + j] = s3 / d;
    }
    for (let i = i0; i < i0 + 4; i++) if (!finishRow(i, i0)) return { ok: false, minPivotRatio, failedAt: i };
  }
  for (let i = i0; i < n; i++) if (!finishRow(i, 0)) return { ok: false, minPivotRatio, failedAt: i };
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
