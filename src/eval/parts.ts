import type { Recipe } from '../recipe/load.js';
import { requireSection } from '../recipe/section.js';
import { balancedSplit, formatPart, type Part } from '../parallel/split.js';
import { PROCESS_BASE_BYTES } from '../parallel/workers.js';
import type { StageUnits } from '../parallel/units.js';
import { evalCheckpointDirs, evalRunName } from './runs.js';
import { resolveCheckpoints } from '../sae/sources.js';
import { readGpt2Config } from '../model/config.js';
import { resolveModelDir } from '../model/hub.js';
import { forwardBytes } from '../model/gpt2.js';

/**
 * Eval in parts: the checkpoints are the units (equal cost: each is one spliced forward per batch next to the
 * shared clean forward); a part writes its checkpoints' per-run results, and the finishing pass (no --part)
 * reuses them all, splices the all-at-once sets and writes the summaries.
 */
const split = (n: number, count: number) => balancedSplit(new Array<number>(n).fill(1), count);

export function evalDirsOfPart(dirs: string[], part: Part, say: (m: string) => void): string[] {
  const mine = split(dirs.length, part.count)[part.index].map((i) => dirs[i]);
  say(`eval part ${formatPart(part)}: ${mine.length} of ${dirs.length} checkpoint(s)${mine.length ? `: ${mine.map(evalRunName).join(', ')}` : ''}`);
  return mine;
}

/** The checkpoints of an eval section as units; a worker holds the model and one batch's forward with logits. */
export async function evalUnits(recipe: Recipe): Promise<StageUnits> {
  const section = requireSection(recipe, 'eval');
  const dirs = evalCheckpointDirs((await resolveCheckpoints(section.checkpoints, recipe.hook_names)).dirs, recipe.train?.out, recipe.path, () => {});
  const c = recipe.model ? readGpt2Config(await resolveModelDir(recipe.model)) : undefined;
  const bytes = PROCESS_BASE_BYTES + (c ? forwardBytes(c, section.batch_size, section.context_size) : 0);
  return { names: dirs.map(evalRunName), split: (count) => split(dirs.length, count), bytes: (units) => (units.length ? bytes : 0) };
}
