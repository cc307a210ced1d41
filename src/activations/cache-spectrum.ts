/**
 * The activation spectrum of a finished cache (src/activations/spectrum.ts), from a seeded uniform sample of its
 * rows, so that it is the same for a cache harvested in one go or merged from parallel parts. Recorded per hook
 * in manifest.json under "spectrum" when a harvest completes; computed on demand for caches made before that
 * (or by synth), without touching their manifest (training records the manifest's sha256).
 */
import { makeRng } from '../io/rng.js';
import { readCacheShard } from './cache.js';
import { existsSync } from 'node:fs';
import { manifestPath, readManifest, type Manifest } from './manifest.js';
import { activationSpectrum, type SpectrumSummary } from './spectrum.js';

/** A hook's spectrum with the cache it was measured on. */
export type HookSpectrum = SpectrumSummary & { cache: string };

/** manifest.json's "spectrum" field. */
export interface ManifestSpectrum {
  /** How it was measured: covariance eigenvalues of `sample_rows` rows drawn uniformly without replacement. */
  method: 'covariance of a seeded row sample';
  sample_rows: number;
  seed: number;
  hooks: Record<string, SpectrumSummary>;
}

export const SPECTRUM_SAMPLE_ROWS = 8192;
export const SPECTRUM_SEED = 0;

/**
 * k distinct row indices out of n, ascending, uniform over all k-subsets (Knuth's selection sampling,
 * Algorithm S), from a generator seeded by `seed`.
 */
export function sampleRowIndices(n: number, k: number, seed: number): Int32Array {
  const rng = makeRng(`spectrum-sample/${seed}`);
  const out = new Int32Array(Math.min(k, n));
  let chosen = 0;
  for (let i = 0; i < n && chosen < out.length; i++) if ((n - i) * rng() < out.length - chosen) out[chosen++] = i;
  return out;
}

/** The sampled rows of each hook, [k, d_in] row-major, in cache order. */
export function sampleCacheRows(dir: string, manifest: Manifest, hooks: readonly string[], k = SPECTRUM_SAMPLE_ROWS, seed = SPECTRUM_SEED): { rows: number; acts: Record<string, Float32Array> } {
  const idx = sampleRowIndices(manifest.tokens, k, seed);
  const d = manifest.d_in;
  const acts: Record<string, Float32Array> = Object.fromEntries(hooks.map((h) => [h, new Float32Array(idx.length * d)]));
  let p = 0, start = 0;
  for (let s = 0; s < manifest.shards.length && p < idx.length; s++) {
    const end = start + manifest.shards[s].rows;
    if (idx[p] < end) {
      const shard = readCacheShard(dir, manifest, s, [...hooks]);
      for (; p < idx.length && idx[p] < end; p++) {
        const r = idx[p] - start;
        for (const h of hooks) acts[h].set(shard[h].subarray(r * d, (r + 1) * d), p * d);
      }
    }
    start = end;
  }
  return { rows: idx.length, acts };
}

/** The spectrum of every hook of the cache in `dir`, measured now. */
export function computeCacheSpectrum(dir: string, manifest = readManifest(dir), k = SPECTRUM_SAMPLE_ROWS, seed = SPECTRUM_SEED): ManifestSpectrum {
  const { rows, acts } = sampleCacheRows(dir, manifest, manifest.hooks, k, seed);
  const hooks: Record<string, SpectrumSummary> = {};
  for (const h of manifest.hooks) hooks[h] = rows >= 2 ? activationSpectrum(acts[h], rows, manifest.d_in) : { top1: 1, top5: 1, top10: 1, effective_rank: 0, total_variance: 0, top_eigenvalues: [] };
  return { method: 'covariance of a seeded row sample', sample_rows: rows, seed, hooks };
}

/** The manifest's recorded spectrum, or (older caches, synth caches) one computed now and not written. */
export function cacheSpectrum(dir: string): ManifestSpectrum {
  const m = readManifest(dir);
  const rec = (m as { spectrum?: ManifestSpectrum }).spectrum;
  if (rec && m.hooks.every((h) => rec.hooks?.[h])) return rec;
  return computeCacheSpectrum(dir, m);
}

/** The spectrum of each hook the runs were trained on (from their caches' manifests, or computed now). */
export function hookSpectra(cfgs: readonly { cache?: string; hook_name: string }[]): Record<string, HookSpectrum> {
  const out: Record<string, HookSpectrum> = {};
  const seen = new Map<string, ReturnType<typeof cacheSpectrum> | null>();
  for (const cfg of cfgs) {
    if (!cfg.cache || out[cfg.hook_name]) continue;
    if (!seen.has(cfg.cache)) seen.set(cfg.cache, existsSync(manifestPath(cfg.cache)) ? cacheSpectrum(cfg.cache) : null);
    const s = seen.get(cfg.cache)?.hooks[cfg.hook_name];
    if (s) out[cfg.hook_name] = { ...s, cache: cfg.cache };
  }
  return out;
}
