import yargs from 'yargs';
import { UserError } from '../io/errors.js';
import { loadRecipe } from '../recipe/load.js';
import { EXTRA_COMMANDS, STAGES } from './commands.js';
import { ExitCode } from './exit-code.js';
import { slurmCommand, statusCommand } from './slurm.js';
import { runStage, setupBackend, stageCommand, stageOptions, withStageFlags, type StageArgs, type StageOptions } from './stage.js';
import { checkWorkers } from '../parallel/workers.js';
import { info } from '../ui/log.js';
import { StopRequested, STOPPED_EXIT_CODE } from '../parallel/stop-signal.js';

const EPILOG = `Examples:
  sae-train recipes/quickstart.yaml        run every stage the recipe has, in order
  sae-train plan recipes/quickstart.yaml   list the runs a sweep expands to
  sae-train train recipes/quickstart.yaml  train only (resumes a killed run)

Every stage reuses finished work on a second run and says so; --fresh starts over.
Recipe keys and defaults: recipes/README.md. Formats: docs/formats.md.`;

/** Runs the CLI on `argv` (without node and script); returns the exit code. Testable without a process. */
export async function main(argv: string[]): Promise<number> {
  const cli = yargs(argv)
    .scriptName('sae-train')
    .usage('$0 <recipe.yaml> | $0 <command> <recipe.yaml>\n\nTrain sparse autoencoders on GPT-2 activations, and measure how good they are.')
    .command({
      command: '$0 <recipe>',
      describe: 'run every stage whose section the recipe has: synth, harvest, train, finetune, eval, consistency, report',
      builder: (y) => withStageFlags(y) as never,
      handler: async (argv) => {
        const a = argv as unknown as StageArgs;
        const recipe = loadRecipe(a.recipe);
        const opts: StageOptions = stageOptions(a);
        if (a.workers !== undefined) checkWorkers(a.workers, '--workers');
        const stages = STAGES.filter((s) => recipe[s.name]);
        if (stages.length === 0) throw new UserError(`${recipe.path}: has no stage sections (${STAGES.map((s) => s.name).join(', ')}).`);
        if (stages.some((s) => s.tensors)) await setupBackend(recipe, opts);
        for (const s of stages) {
          info(`\n== ${s.name} ==`);
          await runStage(s, recipe, opts, a);
        }
      },
    })
    .command(STAGES.map((s) => s.command ?? stageCommand(s)) as never)
    .command(EXTRA_COMMANDS as never)
    .command([slurmCommand, statusCommand] as never)
    .epilog(EPILOG)
    .strict()
    .help()
    .version()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .exitProcess(false)
    .fail((msg, err) => {
      throw err ?? new UserError(msg);
    });
  try {
    await cli.parseAsync();
    return 0;
  } catch (err) {
    if (err instanceof ExitCode) return err.code;
    if (err instanceof StopRequested) {
      process.stderr.write(`${err.message} (exit code ${STOPPED_EXIT_CODE})\n`);
      return STOPPED_EXIT_CODE;
    }
    if (err instanceof UserError) {
      process.stderr.write(`error: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`internal error (please report it with the command you ran): ${(err as Error)?.stack ?? String(err)}\n`);
    return 2;
  }
}
