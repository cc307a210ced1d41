import type { CommandModule } from 'yargs';
import type { Stage } from './stage.js';
import { planCommand } from './plan.js';
import { exportCommand } from './export.js';
import { importCommand } from './import.js';
import { synthStage } from './synth.js';
import { harvestStage } from './harvest.js';
import { trainStage } from './train.js';
import { finetuneStage } from './finetune.js';
import { evalStage } from './eval.js';
import { consistencyStage } from './consistency.js';
import { reportStage } from './report.js';

/**
 * The pipeline's stages in run order. `sae-train recipe.yaml` runs every one
 * whose section the recipe has. Each stage lives in its own file.
 */
export const STAGES: Stage[] = [synthStage, harvestStage, trainStage, finetuneStage, evalStage, consistencyStage, reportStage];

/** Commands that are not stages. */
export const EXTRA_COMMANDS: CommandModule<object, never>[] = [planCommand, importCommand, exportCommand] as unknown as CommandModule<object, never>[];
