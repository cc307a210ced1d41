import { finetuneRecipeUnits, runFinetune } from '../finetune/run.js';
import type { Stage } from './stage.js';

export const finetuneStage: Stage = {
  name: 'finetune',
  describe: 'freeze each trained SAE\'s encoder and fix its decoder (scale | feature_scale | decoder | decoder_kl); writes <run>/finetuned-<method>/ with a before/after table',
  tensors: true,
  parts: true,
  units: finetuneRecipeUnits,
  run: (recipe, opts) => runFinetune(recipe, opts),
};
