import type { CommandModule } from 'yargs';
import { formatBytes, saeSweepTrainBytes, saeTrainBytes, WASM_SAFE_BYTES } from '../backend/memory.js';
import { readManifest } from '../activations/manifest.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadRecipe } from '../recipe/load.js';
import { expandRuns } from '../recipe/expand.js';
import { requireSection } from './stage.js';
import { info } from '../ui/log.js';

/** `sae-train plan recipe.yaml`: the expanded runs, shapes, parameter counts and memory, without training. */
export const planCommand: CommandModule<object, { recipe: string }> = {
  command: 'plan <recipe>',
  describe: 'print the runs a recipe\'s train: section expands to (names, shapes, parameters, memory) without training',
  builder: (y) => y.positional('recipe', { type: 'string', demandOption: true }) as never,
  handler: async (a) => {
    const recipe = loadRecipe(a.recipe);
    const train = requireSection(recipe, 'train');
    const haveCache = existsSync(join(train.cache, 'manifest.json'));
    const manifest = haveCache ? readManifest(train.cache) : undefined;
    const dIn = manifest?.d_in;
    const runs = expandRuns(train, manifest?.hooks ?? []);
    info(`${runs.length} run(s) from ${recipe.path}, ${train.tokens.toLocaleString('en-US')} tokens each, batch ${train.batch_size}, out ${train.out}`);
    if (!dIn) info(`(cache ${train.cache} not found yet: d_in unknown, shapes shown as d_in)`);
    for (const r of runs) {
      const params = dIn ? 2 * dIn * r.d_sae + r.d_sae + dIn : undefined;
      const bytes = dIn ? saeTrainBytes(dIn, r.d_sae, train.batch_size) : 0;
      info(`  ${r.name}\n    hook ${r.hook}  W_enc [${dIn ?? 'd_in'}, ${r.d_sae}]  W_dec [${r.d_sae}, ${dIn ?? 'd_in'}]  l1 ${r.l1_coefficient}  lr ${r.lr}  seed ${r.seed}` +
        (params ? `\n    ${params.toLocaleString('en-US')} parameters, ~${formatBytes(bytes)} while training` : ''));
    }
    if (dIn) info(`all runs at once: ~${formatBytes(saeSweepTrainBytes(dIn, runs.map((r) => r.d_sae), train.batch_size))} (wasm limit we allow: ${formatBytes(WASM_SAFE_BYTES)})`);
  },
};
