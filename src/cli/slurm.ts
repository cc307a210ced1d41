import type { CommandModule } from 'yargs';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { UserError } from '../io/errors.js';
import { loadRecipe } from '../recipe/load.js';
import { slurmDir } from '../slurm/layout.js';
import { collectStatus, formatStatus } from '../slurm/status.js';
import { submitRecipe } from '../slurm/submit.js';
import { info } from '../ui/log.js';
import { STAGES } from './commands.js';
import { ExitCode } from './exit-code.js';

interface SlurmArgs {
  recipe: string;
  tasks?: number;
  partition?: string;
  time?: string;
  'gpus-per-task'?: number;
  'cpus-per-task'?: number;
  mem?: string;
  account?: string;
  'sbatch-arg'?: string[];
  grace: number;
  'dry-run': boolean;
  wait: boolean;
  overwrite: boolean;
  'allow-backend-change': boolean;
  'poll-seconds': number;
}

/** The built CLI the jobs run (dist/cli/bin.js beside this file once compiled). */
function builtBin(): string {
  for (const rel of ['./bin.js', '../../dist/cli/bin.js']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new UserError('the jobs run the built CLI (dist/cli/bin.js), which is missing: run `npm run build` first.');
}

/** `sae-train slurm recipe.yaml`: the recipe as Slurm job arrays (src/slurm/). */
export const slurmCommand: CommandModule<object, SlurmArgs> = {
  command: 'slurm <recipe>',
  describe: 'run the recipe on a Slurm cluster: one sbatch job array per splittable stage (harvest, train, finetune, eval, consistency) plus a finishing job, each stage afterok on the one before; preemption-safe (requeue and resume). Scripts and logs go to <train.out>/slurm/; rerunning submits only what is not done',
  builder: (y) =>
    y
      .positional('recipe', { type: 'string', demandOption: true, describe: 'recipe YAML file; its paths must be on a filesystem every node sees' })
      .option('tasks', { type: 'number', describe: 'tasks per array (default: one per unit: run, shard, checkpoint; capped at the units)' })
      .option('partition', { type: 'string', describe: 'sbatch --partition' })
      .option('time', { type: 'string', describe: 'sbatch --time per task (e.g. 4:00:00)' })
      .option('gpus-per-task', { type: 'number', describe: 'sbatch --gpus-per-task' })
      .option('cpus-per-task', { type: 'number', describe: 'sbatch --cpus-per-task (also the BLAS threads of each task)' })
      .option('mem', { type: 'string', describe: 'sbatch --mem per node (e.g. 16G)' })
      .option('account', { type: 'string', describe: 'sbatch --account' })
      .option('sbatch-arg', { type: 'string', array: true, describe: 'any other sbatch option, one per flag (e.g. --sbatch-arg=--qos=low); repeatable' })
      .option('grace', { type: 'number', default: 120, describe: 'seconds before preemption or the time limit at which a task is told (SIGUSR1) to save its state and requeue' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'only write the sbatch scripts; submit nothing' })
      .option('wait', { type: 'boolean', default: false, describe: 'block until every job has ended; exit 0 if the whole pipeline finished, 1 if not' })
      .option('overwrite', { type: 'boolean', default: false, describe: 'replace outputs (and a Slurm folder) of another recipe; passed on to every stage' })
      .option('allow-backend-change', { type: 'boolean', default: false, describe: 'passed on to every stage: a task requeued onto another CPU type (another OpenBLAS kernel family) or backend resumes anyway, and harvest parts from different backends merge; results are then not bit-identical to one machine\'s' })
      .option('poll-seconds', { type: 'number', default: 10, describe: 'with --wait: how often to ask Slurm' }) as never,
  handler: async (a) => {
    const recipe = loadRecipe(a.recipe);
    for (const k of ['gpus-per-task', 'cpus-per-task', 'grace', 'poll-seconds'] as const) {
      const v = a[k];
      if (v !== undefined && !(Number.isInteger(v) && v >= (k === 'gpus-per-task' ? 0 : 1))) throw new UserError(`--${k} ${v}: give a whole number${k === 'gpus-per-task' ? '' : ' of at least 1'}.`);
    }
    const code = await submitRecipe(recipe, {
      stages: STAGES.map((s) => ({ name: s.name, parts: !!s.parts })),
      tasks: a.tasks,
      resources: {
        partition: a.partition, time: a.time, gpusPerTask: a['gpus-per-task'], cpusPerTask: a['cpus-per-task'], mem: a.mem, account: a.account,
        extra: a['sbatch-arg'] ?? [], graceSeconds: a.grace,
      },
      dryRun: a['dry-run'],
      wait: a.wait,
      overwrite: a.overwrite,
      allowBackendChange: a['allow-backend-change'],
      node: process.execPath,
      bin: builtBin(),
      pollSeconds: a['poll-seconds'],
    });
    if (code !== 0) throw new ExitCode(code);
  },
};

/** `sae-train status recipe.yaml`: where the recipe's Slurm jobs stand. */
export const statusCommand: CommandModule<object, { recipe: string }> = {
  command: 'status <recipe>',
  describe: 'show the recipe\'s Slurm submission per stage, task and run: done, running, pending, failed (with the log and its last error line)',
  builder: (y) => y.positional('recipe', { type: 'string', demandOption: true }) as never,
  handler: (a) => {
    const recipe = loadRecipe(a.recipe);
    info(formatStatus(collectStatus(recipe), slurmDir(recipe)));
  },
};
