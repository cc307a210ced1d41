/**
 * Consistency in parts: the units are the seed pairs then the size pairs (cost: rows of A through the blocked
 * cosine passes, 2·d_sae for a seed pair, d_sae for a size pair). A part writes `<out>/part-<i>.json` (the
 * consistency.json layout, its pairs only), so parts never write consistency.json; the finishing pass reuses
 * every part's pairs by their inputs' hash, writes consistency.json and consistency.md, and removes the part files.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { balancedSplit, formatPart, type Part } from '../parallel/split.js';
import type { StageUnits } from '../parallel/units.js';
import { PROCESS_BASE_BYTES } from '../parallel/workers.js';

export const partJsonPath = (out: string, part: Part): string => join(out, `part-${part.index}.json`);

export function partJsonPaths(out: string): string[] {
  if (!existsSync(out)) return [];
  return readdirSync(out).filter((f) => /^part-\d+\.json$/.test(f)).sort().map((f) => join(out, f));
}

export function removePartJsons(out: string): void {
  for (const p of partJsonPaths(out)) rmSync(p, { force: true });
}

type Pair<T> = [T, T];
interface Sized { name: string; cfg: { d_sae: number } }

const pairCosts = <T extends Sized>(seeds: Pair<T>[], sizes: Pair<T>[]) => [...seeds.map(([a]) => 2 * a.cfg.d_sae), ...sizes.map(([a]) => a.cfg.d_sae)];

/** The seed and size pairs of one part. */
export function pairsOfPart<T extends Sized>(seeds: Pair<T>[], sizes: Pair<T>[], part: Part, say: (m: string) => void): { seeds: Pair<T>[]; sizes: Pair<T>[] } {
  const units = balancedSplit(pairCosts(seeds, sizes), part.count)[part.index];
  const out = { seeds: units.filter((i) => i < seeds.length).map((i) => seeds[i]), sizes: units.filter((i) => i >= seeds.length).map((i) => sizes[i - seeds.length]) };
  say(`consistency part ${formatPart(part)}: ${units.length} of ${seeds.length + sizes.length} pair(s)`);
  return out;
}

/** The pairs as units; a worker holds two SAEs and a block of cosines. */
export function consistencyUnits<T extends Sized & { cfg: { d_in: number } }>(seeds: Pair<T>[], sizes: Pair<T>[]): StageUnits {
  const all = [...seeds, ...sizes];
  return {
    names: all.map(([a, b]) => `${a.name} vs ${b.name}`),
    split: (count) => balancedSplit(pairCosts(seeds, sizes), count),
    bytes: (units) => (units.length ? PROCESS_BASE_BYTES + Math.max(...units.map((i) => 4 * 4 * all[i][0].cfg.d_in * (all[i][0].cfg.d_sae + all[i][1].cfg.d_sae) + 4 * 4096 * all[i][1].cfg.d_sae)) : 0),
  };
}
