/**
 * Chance baselines for agreement scores between dictionaries. An MMCS or matched fraction means little on its
 * own when the activations fill only a few directions: any two sets of directions drawn from such a cloud agree.
 * So beside each score of dictionary A against dictionary B we compute the same score of A against
 *  - a null dictionary: B's number of unit vectors drawn from a Gaussian with the activations' covariance, and
 *  - B's initialisation (initWeights' seeded directions: what the pair would score had B never trained; for a
 *    size pair with one seed, B's initialisation contains A's own).
 * "Above chance" is the raw score minus the larger baseline. Pure functions; I/O in chance-run.ts.
 */
import { choleskyInPlace } from '../finetune/cholesky.js';
import { gaussian, makeRng } from '../io/rng.js';
import { initWeights } from '../sae/init.js';
import { normalizeRows } from './cosine.js';

/** A score beside its baselines. null: that baseline could not be computed (see the file's notes). */
export interface ChanceRow {
  raw: number;
  null: number | null;
  init: number | null;
  /** raw − max(null, init) over the baselines present */
  above_chance: number;
}

export function chanceRow(raw: number, nul: number | null, init: number | null): ChanceRow {
  const base = Math.max(...[nul, init].filter((v): v is number => v !== null), -Infinity);
  return { raw, null: nul, init, above_chance: Number.isFinite(base) ? raw - base : raw };
}

/**
 * dSae unit rows [dSae, d] drawn from N(0, cov) (covDD [d, d] row-major): x = L·g with cov + εI = L·Lᵀ, ε a
 * millionth of the mean variance (so a rank-deficient covariance factors; the draws stay in its span up to
 * that jitter), g standard normal from a generator seeded by `seed`.
 */
export function nullDictionary(covDD: Float64Array, d: number, dSae: number, seed: string): Float32Array {
  let trace = 0;
  for (let i = 0; i < d; i++) trace += covDD[i * d + i];
  let jitter = Math.max(1e-6 * (trace / d), 1e-30);
  let L = Float64Array.from(covDD);
  for (let attempt = 0; ; attempt++) {
    L = Float64Array.from(covDD);
    for (let i = 0; i < d; i++) L[i * d + i] += jitter;
    if (choleskyInPlace(L, d, 0).ok) break;
    if (attempt === 20) throw new Error('nullDictionary: the covariance does not factor even with jitter (non-finite values?)');
    jitter *= 10;
  }
  const rng = makeRng(`null-dictionary/${seed}`);
  const out = new Float32Array(dSae * d);
  const g = new Float64Array(d);
  for (let r = 0; r < dSae; r++) {
    for (let k = 0; k < d; k++) g[k] = gaussian(rng);
    for (let i = 0; i < d; i++) {
      let s = 0;
      for (let k = 0; k <= i; k++) s += L[i * d + k] * g[k];
      out[r * d + i] = s;
    }
  }
  return normalizeRows(out, dSae, d);
}

/**
 * The unit decoder directions a run started from, rebuilt from its seed: initWeights draws them from the seed
 * alone (b_dec, the activation scale and the decoder norm do not change directions). [dSae, dIn].
 */
export function initDirections(dIn: number, dSae: number, seed: number): Float32Array {
  return normalizeRows(initWeights(dIn, dSae, seed, new Float32Array(dIn)).W_dec, dSae, dIn);
}
