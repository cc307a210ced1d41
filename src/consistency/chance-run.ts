/**
 * Chance baselines (chance.ts) for the pairs of a consistency run: the activations' covariance from the cache
 * the runs were trained on (cfg.json "cache"; recomputed from the same seeded sample as the manifest's spectrum,
 * which is cheap, so nothing extra is stored), null dictionaries and rebuilt initialisations scored like the
 * real partner. Also the per-hook activation spectrum that consistency.json shows beside the scores.
 */
import { existsSync } from 'node:fs';
import { sampleCacheRows } from '../activations/cache-spectrum.js';
import { manifestPath, readManifest } from '../activations/manifest.js';
import { covarianceDD } from '../activations/spectrum.js';
import type { SaeCfg } from '../sae/checkpoint.js';
import type { SaeWeights } from '../sae/weights.js';
import { chanceRow, initDirections, nullDictionary, type ChanceRow } from './chance.js';
import { DEFAULT_MATCH } from './consistency.js';
import { CosineEngine, mean, normalizeRows } from './cosine.js';
import { spaceConsistency } from './pair-consistency.js';
import type { PairChance, SpaceConsistency } from './consistency-types.js';

/** Covariances per (cache, hook), read once per consistency run. */
export class CovarianceSource {
  private memo = new Map<string, { cov: Float64Array; d: number } | string>();

  /** The covariance of the hook's activations in the run's cache, or a reason why there is none. */
  get(cfg: SaeCfg): { cov: Float64Array; d: number } | string {
    const cache = cfg.cache;
    if (!cache) return 'cfg.json names no cache';
    const key = `${cache}\u0000${cfg.hook_name}`;
    let v = this.memo.get(key);
    if (v === undefined) {
      if (!existsSync(manifestPath(cache))) v = `cache ${cache} not found`;
      else {
        const m = readManifest(cache);
        if (!m.hooks.includes(cfg.hook_name)) v = `cache ${cache} has no hook ${cfg.hook_name}`;
        else if (m.d_in !== cfg.d_in) v = `cache ${cache} has d_in ${m.d_in}, the run ${cfg.d_in}`;
        else {
          const s = sampleCacheRows(cache, m, [cfg.hook_name]);
          v = s.rows < 2 ? `cache ${cache} has fewer than 2 rows` : { cov: covarianceDD(s.acts[cfg.hook_name], s.rows, m.d_in), d: m.d_in };
        }
      }
      this.memo.set(key, v);
    }
    return v;
  }
}

/** mmcs (and matched fractions when `match`) of unit rows aND [n, d] against bND [m, d]. */
async function scoresOf(aUnit: Float32Array, bUnit: Float32Array, n: number, m: number, d: number, thresholds: readonly number[], match: boolean): Promise<Record<string, number>> {
  if (match) {
    const r = (await spaceConsistency(aUnit, bUnit, n, m, d, thresholds)).result;
    return { mmcs: r.mmcs, ...Object.fromEntries(thresholds.map((t) => [`matched_fraction@${t}`, r[`matched_fraction@${t}`]])) };
  }
  const engine = new CosineEngine(bUnit, m, d);
  try {
    return { mmcs: mean((await engine.compare(aUnit, n)).rowMax) };
  } finally {
    engine.dispose();
  }
}

/** Whether a one-to-one matching of n features into m can be computed (spaceConsistency: dense for n < m). */
export function canMatch(n: number, m: number): boolean {
  return n === m || n <= DEFAULT_MATCH.denseMax;
}

/**
 * The raw scores of a against b (decoder rows) beside the same scores of a against a null dictionary of b's
 * size and against b's initialisation (none for an SAE imported from another tool: its initialisation is not
 * ours to rebuild). `raw` holds the keys to fill (mmcs, matched_fraction@t).
 */
export async function pairChance(a: SaeWeights, b: { cfg: SaeCfg; dSae: number }, raw: Record<string, number>, thresholds: readonly number[], covs: CovarianceSource): Promise<PairChance> {
  const d = a.dIn, n = a.dSae, m = b.dSae;
  const match = Object.keys(raw).some((k) => k.startsWith('matched_fraction@'));
  const aUnit = normalizeRows(a.W_dec, n, d);
  const cov = covs.get(b.cfg);
  const nul = typeof cov === 'string' ? null
    : await scoresOf(aUnit, nullDictionary(cov.cov, d, m, `${b.cfg.hook_name}/${m}/${b.cfg.seed}`), n, m, d, thresholds, match);
  const init = b.cfg.imported_from ? null : await scoresOf(aUnit, initDirections(d, m, b.cfg.seed), n, m, d, thresholds, match);
  const scores: Record<string, ChanceRow> = {};
  for (const [k, v] of Object.entries(raw)) scores[k] = chanceRow(v, nul ? nul[k] : null, init ? init[k] : null);
  return { scores, null_missing: typeof cov === 'string' ? cov : null };
}

/** The keys pairChance compares: mmcs and matched_fraction@t of a seed pair's decoder result. */
export function rawScores(dec: SpaceConsistency, thresholds: readonly number[]): Record<string, number> {
  return { mmcs: dec.mmcs, ...Object.fromEntries(thresholds.map((t) => [`matched_fraction@${t}`, dec[`matched_fraction@${t}`]])) };
}

/** A size pair's raw scores: the small → large mmcs, and matched fractions when a matching can be computed. */
export async function sizePairRaw(small: SaeWeights, large: SaeWeights, mmcs: number, thresholds: readonly number[]): Promise<Record<string, number>> {
  if (!canMatch(small.dSae, large.dSae)) return { mmcs };
  const d = small.dIn;
  const r = await scoresOf(normalizeRows(small.W_dec, small.dSae, d), normalizeRows(large.W_dec, large.dSae, d), small.dSae, large.dSae, d, thresholds, true);
  return { ...r, mmcs };
}

/** MMCS of a run's decoder against the directions it was initialised with (1 = it has not moved). */
export async function ownInitMmcs(w: SaeWeights, seed: number): Promise<number> {
  return (await scoresOf(normalizeRows(w.W_dec, w.dSae, w.dIn), initDirections(w.dIn, w.dSae, seed), w.dSae, w.dSae, w.dIn, [], false)).mmcs;
}

