/**
 * The activation spectrum of a hook: eigenvalues of the covariance of a sample of its activation rows, and
 * how concentrated they are. A residual stream whose top few principal components hold nearly all the variance
 * determines SAE features poorly, and agreement scores between SAEs trained on it are inflated by the geometry
 * of the cloud (consistency's chance baselines show by how much). Pure math, float64.
 */

/** Summary of one hook's spectrum (what manifest.json records per hook). */
export interface SpectrumSummary {
  /** Share of the variance in the top 1 / 5 / 10 principal components (eigenvalues sorted descending). */
  top1: number;
  top5: number;
  top10: number;
  /** Participation ratio (Σλ)² / Σλ²: 1 for one direction, d_in for an isotropic cloud. */
  effective_rank: number;
  /** Σλ = trace of the covariance (mean squared distance from the mean). */
  total_variance: number;
  /** The ten largest eigenvalues, descending. */
  top_eigenvalues: number[];
}

/** Share of the variance in the top five components above which a hook is called degenerate. */
export const DEGENERATE_TOP5 = 0.9;

/** Sample covariance (centred, divided by n − 1, like numpy.cov) of rows xND [n, d] → [d, d] row-major. */
export function covarianceDD(xND: Float32Array, n: number, d: number): Float64Array {
  if (n < 2) throw new Error(`covarianceDD: needs at least 2 rows, got ${n}`);
  const mean = new Float64Array(d);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) mean[j] += xND[r * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  const c = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < d; j++) row[j] = xND[r * d + j] - mean[j];
    for (let a = 0; a < d; a++) {
      const va = row[a];
      if (va === 0) continue;
      const o = a * d;
      for (let b = a; b < d; b++) c[o + b] += va * row[b];
    }
  }
  for (let a = 0; a < d; a++)
    for (let b = a; b < d; b++) {
      const v = c[a * d + b] / (n - 1);
      c[a * d + b] = v;
      c[b * d + a] = v;
    }
  return c;
}

/**
 * Eigenvalues of a symmetric matrix aNN [n, n] (row-major; only the lower triangle is read; not modified),
 * sorted descending: Householder reduction to tridiagonal form, then the QL algorithm with implicit shifts.
 */
export function symmetricEigenvalues(aNN: Float64Array, n: number): Float64Array {
  const a = Float64Array.from(aNN);
  const d = new Float64Array(n), e = new Float64Array(n);
  // Householder: a → tridiagonal (diagonal d, off-diagonal e[i] between i−1 and i).
  for (let i = n - 1; i > 0; i--) {
    const l = i - 1;
    let h = 0;
    if (l > 0) {
      let scale = 0;
      for (let k = 0; k <= l; k++) scale += Math.abs(a[i * n + k]);
      if (scale === 0) e[i] = a[i * n + l];
      else {
        for (let k = 0; k <= l; k++) {
          a[i * n + k] /= scale;
          h += a[i * n + k] * a[i * n + k];
        }
        let f = a[i * n + l];
        let g = f >= 0 ? -Math.sqrt(h) : Math.sqrt(h);
        e[i] = scale * g;
        h -= f * g;
        a[i * n + l] = f - g;
        f = 0;
        for (let j = 0; j <= l; j++) {
          g = 0;
          for (let k = 0; k <= j; k++) g += a[j * n + k] * a[i * n + k];
          for (let k = j + 1; k <= l; k++) g += a[k * n + j] * a[i * n + k];
          e[j] = g / h;
          f += e[j] * a[i * n + j];
        }
        const hh = f / (h + h);
        for (let j = 0; j <= l; j++) {
          f = a[i * n + j];
          g = e[j] - hh * f;
          e[j] = g;
          for (let k = 0; k <= j; k++) a[j * n + k] -= f * e[k] + g * a[i * n + k];
        }
      }
    } else e[i] = a[i * n + l];
  }
  for (let i = 0; i < n; i++) d[i] = a[i * n + i];
  // QL with implicit shifts on the tridiagonal matrix.
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  if (n > 0) e[n - 1] = 0;
  for (let l = 0; l < n; l++) {
    let iter = 0;
    let m: number;
    do {
      for (m = l; m < n - 1; m++) {
        const dd = Math.abs(d[m]) + Math.abs(d[m + 1]);
        if (Math.abs(e[m]) <= Number.EPSILON * dd) break;
      }
      if (m !== l) {
        if (iter++ === 100) throw new Error('symmetricEigenvalues: no convergence after 100 iterations');
        let g = (d[l + 1] - d[l]) / (2 * e[l]);
        let r = Math.hypot(g, 1);
        g = d[m] - d[l] + e[l] / (g + (g >= 0 ? Math.abs(r) : -Math.abs(r)));
        let s = 1, c = 1, p = 0;
        let i: number;
        for (i = m - 1; i >= l; i--) {
          const f = s * e[i], b = c * e[i];
          r = Math.hypot(f, g);
          e[i + 1] = r;
          if (r === 0) {
            d[i + 1] -= p;
            e[m] = 0;
            break;
          }
          s = f / r;
          c = g / r;
          g = d[i + 1] - p;
          r = (d[i] - g) * s + 2 * c * b;
          p = s * r;
          d[i + 1] = g + p;
          g = c * r - b;
        }
        if (r === 0 && i >= l) continue;
        d[l] -= p;
        e[l] = g;
        e[m] = 0;
      }
    } while (m !== l);
  }
  return d.sort().reverse();
}

/** Shares, participation ratio and top eigenvalues of eigenvalues sorted descending (negatives from rounding count as 0). */
export function summarizeSpectrum(eigsDesc: Float64Array): SpectrumSummary {
  const lam = Array.from(eigsDesc, (v) => Math.max(0, v));
  const total = lam.reduce((s, v) => s + v, 0);
  const sq = lam.reduce((s, v) => s + v * v, 0);
  const top = (k: number) => (total > 0 ? lam.slice(0, k).reduce((s, v) => s + v, 0) / total : 1);
  return {
    top1: top(1), top5: top(5), top10: top(10),
    effective_rank: sq > 0 ? (total * total) / sq : 0,
    total_variance: total,
    top_eigenvalues: lam.slice(0, 10),
  };
}

/** The spectrum summary of rows xND [n, d]. */
export function activationSpectrum(xND: Float32Array, n: number, d: number): SpectrumSummary {
  return summarizeSpectrum(symmetricEigenvalues(covarianceDD(xND, n, d), d));
}

/** True where the top five components hold more than DEGENERATE_TOP5 of the variance. */
export function isDegenerate(s: Pick<SpectrumSummary, 'top5'>): boolean {
  return s.top5 > DEGENERATE_TOP5;
}

/** One line for the console, the report and eval: "top-1 55.0%, top-5 97.1%, top-10 99.0%, effective rank 2.3". */
export function spectrumLine(s: SpectrumSummary): string {
  const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
  return `top-1 ${pct(s.top1)}, top-5 ${pct(s.top5)}, top-10 ${pct(s.top10)}, effective rank ${s.effective_rank.toFixed(1)}`;
}

/** The warning for a degenerate hook, naming it. */
export function degenerateWarning(hook: string, s: SpectrumSummary): string {
  return `${hook}: the top five principal components hold ${(100 * s.top5).toFixed(1)}% of the activations' variance ` +
    `(effective rank ${s.effective_rank.toFixed(1)}): SAE features there are poorly determined and agreement scores between SAEs are inflated; read them beside their chance baselines.`;
}
