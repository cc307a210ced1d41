import { existsSync } from 'node:fs';
import { hookSpectra, type HookSpectrum } from '../activations/cache-spectrum.js';
import { manifestPath } from '../activations/manifest.js';
import type { ConsistencyFile } from '../consistency/consistency-types.js';
import type { Recipe } from '../recipe/load.js';

/** Per-hook spectrum: consistency.json's, else the train cache's (manifest record or computed now). */
export function reportSpectrum(recipe: Recipe, c: ConsistencyFile | undefined): Record<string, HookSpectrum> {
  if (c?.spectrum && Object.keys(c.spectrum).length) return c.spectrum;
  const cache = recipe.train?.cache ?? recipe.harvest?.out;
  if (!cache || !existsSync(manifestPath(cache))) return {};
  const hooks = recipe.train?.hook ? [recipe.train.hook].flat() : recipe.harvest?.hooks ?? [];
  return hookSpectra(hooks.map((h) => ({ cache, hook_name: h })));
}
