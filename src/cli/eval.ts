import { runEval } from '../eval/run.js';
import { evalUnits } from '../eval/parts.js';
import { requireSection, type Stage } from './stage.js';

export const evalStage: Stage = {
  name: 'eval',
  describe: 'splice each SAE into GPT-2 on held-out text: reconstruction, CE/KL, all-at-once, per-token CE-diff, propagation, top-k/drop-lowest, samples',
  tensors: true,
  parts: true,
  units: evalUnits,
  outputs: (recipe) => [{ path: requireSection(recipe, 'eval').out, key: 'eval.out' }],
  run: runEval,
};
