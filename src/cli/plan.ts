import type { CommandModule } from 'yargs';
import { formatBytes, saeSweepTrainBytes, saeTrainBytes, WASM_SAFE_BYTES } from '../backend/memory.js';
import { readManifest } from '../activations/manifest.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadRecipe } from '../recipe/load.js';
import { expandRuns } from '../recipe/expand.js';
import { requireSection } from './stage.js';
import { info } from '../ui/log.js';
import { describeGpuBinding, gpuBinding, nvidiaSmiGpus, openableNvidiaNodes } from '../backend/gpu-binding.js';
import { describeUnits } from '../parallel/units.js';
import { stageWorkers } from '../parallel/run-split.js';
import { checkWorkers } from '../parallel/workers.js';
import type { Recipe } from '../recipe/load.js';
import type { Stage } from './stage.js';
import { harvestStage } from './harvest.js';
import { trainStage } from './train.js';
import { finetuneStage } from './finetune.js';
import { evalStage } from './eval.js';
import { consistencyStage } from './consistency.js';

/** `sae-train plan recipe.yaml`: the expanded runs, shapes, parameter counts and memory, without training. */
export const planCommand: CommandModule<object, { recipe: string; workers?: number }> = {
  command: 'plan <recipe>',
  describe: 'print the runs a recipe\'s train: section expands to (names, shapes, parameters, memory) and how workers split each stage, without running anything',
  builder: (y) => y.positional('recipe', { type: 'string', demandOption: true })
    .option('workers', { type: 'number', describe: 'show the split for this many workers (as --workers would run it)' }) as never,
  handler: async (a) => {
    const recipe = loadRecipe(a.recipe);
    const flag = a.workers === undefined ? undefined : checkWorkers(a.workers, '--workers');
    if (recipe.train) planTrain(recipe);
    await planWorkers(recipe, flag);
    const nodes = openableNvidiaNodes().length;
    for (const line of describeGpuBinding(gpuBinding(), Math.max(nodes ? nvidiaSmiGpus()?.length ?? 0 : 0, nodes))) info(`\n${line}`);
  },
};

/** How `workers` would split each splittable stage of the recipe, with the memory of the largest worker. */
async function planWorkers(recipe: Recipe, flag: number | undefined): Promise<void> {
  const stages: Stage[] = [harvestStage, trainStage, finetuneStage, evalStage, consistencyStage];
  for (const st of stages) {
    if (!recipe[st.name] || !st.units) continue;
    let units;
    try {
      units = await st.units(recipe);
    } catch (err) {
      info(`\n${st.name}: split not known yet (${(err as Error).message.split('\n')[0]})`);
      continue;
    }
    const choice = stageWorkers(recipe, flag, units, undefined);
    info(`\n${st.name}: ${units.names.length} unit(s) in ${choice.count} worker(s)${choice.count > 1 ? ` (--part i/${choice.count})` : ''}; on a GPU backend one worker per GPU`);
    for (const n of choice.notes) info(`  ${n}`);
    units.split(choice.count).forEach((p, i) => info(`  worker ${i}: ${p.length} unit(s), ~${formatBytes(units.bytes(p))}: ${describeUnits(units, p)}`));
  }
}

function planTrain(recipe: Recipe): void {
  {
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
  }
}
