import { harvestFromRecipe, harvestRecipeUnits } from '../activations/run-harvest.js';
import { requireSection, type Stage } from './stage.js';

export const harvestStage: Stage = {
  name: 'harvest',
  describe: 'tokenize the corpus, run GPT-2 and write the activations at the recipe\'s hooks to an Arrow cache (resumable)',
  tensors: true,
  parts: true,
  units: harvestRecipeUnits,
  outputs: (recipe) => [{ path: requireSection(recipe, 'harvest').out, key: 'harvest.out' }],
  run: harvestFromRecipe,
};
