import { consistencyRecipeUnits, runConsistency } from '../consistency/run.js';
import { requireSection, type Stage } from './stage.js';

export const consistencyStage: Stage = {
  name: 'consistency',
  describe: 'compare runs that differ only in seed (MMCS, optimal feature matching, by density) and in size (feature splitting)',
  tensors: true,
  parts: true,
  units: consistencyRecipeUnits,
  outputs: (recipe) => [{ path: requireSection(recipe, 'consistency').out, key: 'consistency.out' }],
  run: async (recipe, opts) => {
    await runConsistency(recipe, opts);
  },
};
