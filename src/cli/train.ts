import { info } from '../ui/log.js';
import { requireSection, type Stage } from './stage.js';
import { trainAll } from '../train/train.js';
import { trainUnits } from '../train/units.js';

/** `sae-train train recipe.yaml`: every SAE of the train: section, from the activation cache. */
export const trainStage: Stage = {
  name: 'train',
  describe: 'train every SAE the recipe\'s train: section expands to, feeding each batch to all of them (resumes a killed run)',
  tensors: true,
  parts: true,
  units: async (recipe) => trainUnits(requireSection(recipe, 'train')),
  outputs: (recipe) => [{ path: requireSection(recipe, 'train').out, key: 'train.out' }],
  async run(recipe, opts) {
    const t = requireSection(recipe, 'train');
    const s = await trainAll(t, { fresh: opts.fresh, overwrite: opts.overwrite, part: opts.part, allowBackendChange: opts.allowBackendChange });
    info(`train: ${s.trained.length} run(s) trained, ${s.reused.length} reused, in ${t.out}`);
  },
};
