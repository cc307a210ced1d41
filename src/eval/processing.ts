import { readCfg, type LoadOptions } from '../sae/checkpoint.js';
import { recipeProcessing, saeProcessing, STATE_PROCESSING_FIX, type SaeProcessing } from '../sae/provenance.js';
import { UserError } from '../io/errors.js';

/**
 * Which TransformerLens weight processing eval runs the model with, so that each SAE's hook holds what it was
 * trained on (recipe key sae_processing):
 * - `apply`: the SAEs' own when they all agree, one that does not say counting as the recipe's harvest
 *   settings; the recipe's settings otherwise (those that differ then fail alone, named);
 * - `refuse`: the recipe's harvest settings, and every SAE trained on another processing fails alone.
 * An SAE that does not say (a SAELens folder without model_from_pretrained_kwargs, a run whose cache is gone)
 * runs on the chosen model with a warning naming how to state it.
 */
export type SaeProcessingMode = 'apply' | 'refuse';

export interface ProcessingChoice {
  /** The processing label the model is loaded with. */
  label: string;
  /** Lines to print: the choice when it is not the recipe's, every SAE that does not say. */
  notes: string[];
  /** The fix named for an SAE whose processing differs from the model's. */
  fix: string;
}

/** Pure: the choice from the recipe's processing and what each SAE says (undefined: nothing). */
export function chooseProcessing(mode: SaeProcessingMode, recipeLabel: string, saes: readonly { dir: string; p?: SaeProcessing }[]): ProcessingChoice {
  const notes = saes.filter((s) => !s.p).map((s) => `${s.dir}: does not say which weight processing its model had; evaluated on the model as loaded. ${STATE_PROCESSING_FIX}`);
  const groups = new Map<string, string[]>();
  for (const s of saes) {
    const label = s.p?.label ?? recipeLabel;
    groups.set(label, [...(groups.get(label) ?? []), s.dir]);
  }
  if (mode === 'apply' && groups.size === 1) {
    const label = [...groups.keys()][0];
    if (label !== recipeLabel) notes.unshift(`eval runs the model with weight processing "${label}", the one its SAEs were trained on (sae_processing: apply; the recipe's harvest settings say "${recipeLabel}").`);
    return { label, notes, fix: '' };
  }
  const fix = mode === 'refuse'
    ? 'Set harvest.fold_ln / center_writing_weights in this recipe as they were when its cache was made, or sae_processing: apply to run the model as the SAEs were trained.'
    : `The SAEs evaluated here were trained on different processings (${[...groups].map(([l, d]) => `"${l}": ${d.length}`).join(', ')}) and one eval runs one model: evaluate this one in a recipe of its own (another eval.out).`;
  return { label: recipeLabel, notes, fix };
}

/** What each checkpoint folder says (unreadable ones are left to loadEvalCheckpoint to report). */
export function checkpointProcessing(dirs: readonly string[], opts: (dir: string) => LoadOptions): { dir: string; p?: SaeProcessing }[] {
  return dirs.flatMap((dir) => {
    try {
      return [{ dir, p: saeProcessing(readCfg(dir, opts(dir)), dir) }];
    } catch (err) {
      if (err instanceof UserError) return [];
      throw err;
    }
  });
}

export { recipeProcessing };
