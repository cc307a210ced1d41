import { finetuneRecipeUnits, runFinetune } from '../finetune/run.js';
import { HF_PREFIX, hfCacheDir } from '../sae/sources.js';
import { requireSection, type Stage } from './stage.js';

export const finetuneStage: Stage = {
  name: 'finetune',
  describe: 'freeze each trained SAE\'s encoder and fix its decoder (scale | feature_scale | decoder | decoder_kl); writes <run>/finetuned-<method>/ with a before/after table',
  tensors: true,
  parts: true,
  units: finetuneRecipeUnits,
  // Each finetune is written into its parent's folder: train.out's runs, or the named checkpoints.
  outputs: (recipe) => {
    const named = requireSection(recipe, 'finetune').checkpoints;
    if (named.length) return named.map((c) => ({ path: c.startsWith(HF_PREFIX) ? hfCacheDir(c) : c, key: 'finetune.checkpoints' }));
    return recipe.train ? [{ path: recipe.train.out, key: 'train.out' }] : [];
  },
  run: (recipe, opts) => runFinetune(recipe, opts),
};
