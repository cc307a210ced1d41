import seedrandom from 'seedrandom';
import { UMAP } from 'umap-js';

/**
 * Most sequences embedded (a seeded subsample beyond) and optimisation epochs: umap-js is plain JS and the
 * report must stay cheap (1000 points × 768 dims, 200 epochs: ~4 s on a 2-core machine; the epochs dominate).
 */
export const UMAP_MAX_POINTS = 1000;
export const UMAP_EPOCHS = 200;

/**
 * A seeded 2-d UMAP of rows xND [n, d] (a subsample of at most maxPoints rows), returned with the indices of
 * the rows embedded. Same input and seed → same embedding.
 */
export function umap2d(xND: Float32Array, n: number, d: number, seed = 0, maxPoints = UMAP_MAX_POINTS): { idx: number[]; xy: number[][] } | null {
  const rng = seedrandom(`umap-${seed}`);
  let idx = Array.from({ length: n }, (_, i) => i);
  if (n > maxPoints) {
    for (let i = n - 1; i > 0; i--) { const j = Math.floor(rng() * (i + 1)); [idx[i], idx[j]] = [idx[j], idx[i]]; }
    idx = idx.slice(0, maxPoints).sort((a, b) => a - b);
  }
  if (idx.length < 5) return null;
  const rows = idx.map((i) => Array.from(xND.subarray(i * d, (i + 1) * d)));
  const u = new UMAP({ nComponents: 2, nNeighbors: Math.min(15, idx.length - 1), minDist: 0.1, nEpochs: UMAP_EPOCHS, random: rng });
  return { idx, xy: u.fit(rows) };
}
