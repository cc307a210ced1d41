import type { CommandModule } from 'yargs';
import { writeSynthCache } from '../activations/synth.js';
import { UserError } from '../io/errors.js';
import { loadRecipe } from '../recipe/load.js';
import { SynthSchema, type SynthConfig } from '../recipe/schema.js';
import { info } from '../ui/log.js';
import { createProgress } from '../ui/progress.js';
import { requireSection, withOutputs, type Stage, type StageOptions } from './stage.js';

/** Makes the synthetic cache of a synth: section, reporting what it did. */
export function runSynth(cfg: SynthConfig, opts: Pick<StageOptions, 'fresh' | 'overwrite'>): void {
  const progress = createProgress('synth', Math.ceil(cfg.tokens / cfg.shard_tokens), 'shards');
  let r;
  try {
    r = writeSynthCache(cfg, { ...opts, onShard: (done) => progress.update(done) });
  } finally {
    progress.stop();
  }
  if (r.reused) info(`synth: ${r.dir} already holds this synthetic cache, reusing it; --fresh rewrites it.`);
  else info(`synth: ${cfg.tokens.toLocaleString('en-US')} tokens of ${cfg.n_features} ground-truth features in ${cfg.d_in} dimensions written to ${r.dir}${r.resumedShards ? ` (resumed after ${r.resumedShards} finished shards)` : ''}.`);
}

const FLAGS = {
  'd-in': 'd_in', 'n-features': 'n_features', 'active-features': 'active_features', tokens: 'tokens',
  seed: 'seed', 'shard-tokens': 'shard_tokens', dtype: 'dtype', out: 'out',
} as const;

/** `sae-train synth <recipe>` or `sae-train synth --d-in 64 --n-features 256 --tokens 100000 --out DIR`. */
const synthCommand: CommandModule<object, never> = {
  command: 'synth [recipe]',
  describe: 'write a synthetic activation cache (sparse combinations of known feature directions, ground truth saved beside it), from a recipe\'s synth: section or from flags',
  builder: (y) => y
    .positional('recipe', { type: 'string', describe: 'recipe YAML with a synth: section (or give the flags instead)' })
    .option('d-in', { type: 'number', describe: 'dimension of the activations (default 64)' })
    .option('n-features', { type: 'number', describe: 'ground-truth features, more than d-in (default 256)' })
    .option('active-features', { type: 'number', describe: 'expected active features per token (default 4)' })
    .option('tokens', { type: 'number', describe: 'rows to write (default 200000)' })
    .option('seed', { type: 'number', describe: 'seed of the features and the data (default 0)' })
    .option('shard-tokens', { type: 'number', describe: 'rows per shard (default 65536)' })
    .option('dtype', { choices: ['float32', 'float16'] as const, describe: 'storage type (default float32)' })
    .option('out', { type: 'string', describe: 'output cache folder' })
    .option('overwrite', { type: 'boolean', default: false, describe: 'replace an output folder that holds something else' })
    .option('fresh', { type: 'boolean', default: false, describe: 'rewrite the cache even if it is already there' }) as never,
  handler: async (argv) => {
    const a = argv as unknown as Record<string, unknown> & { recipe?: string; overwrite: boolean; fresh: boolean };
    const given = Object.keys(FLAGS).filter((f) => a[f] !== undefined);
    const opts = { overwrite: a.overwrite, fresh: a.fresh };
    if (a.recipe) {
      if (given.length) throw new UserError(`synth: give a recipe or flags, not both (got ${a.recipe} and --${given.join(', --')}). Put the settings in the recipe's synth: section.`);
      const cfg = requireSection(loadRecipe(a.recipe), 'synth');
      return withOutputs('synth', [{ path: cfg.out, key: 'synth.out' }], undefined, async () => runSynth(cfg, opts));
    }
    if (a.out === undefined) throw new UserError('synth: give a recipe with a synth: section, or flags with at least --out. Example: sae-train synth --d-in 64 --n-features 256 --tokens 100000 --out cache/synthetic');
    const raw = Object.fromEntries(given.map((f) => [FLAGS[f as keyof typeof FLAGS], a[f]]));
    const r = SynthSchema.safeParse(raw);
    if (!r.success) {
      const i = r.error.issues[0];
      const flag = Object.entries(FLAGS).find(([, k]) => k === i.path[0])?.[0] ?? String(i.path[0]);
      throw new UserError(`synth: --${flag}: ${i.message}.`);
    }
    await withOutputs('synth', [{ path: r.data.out, key: '--out' }], undefined, async () => runSynth(r.data, opts));
  },
};

export const synthStage: Stage = {
  name: 'synth',
  describe: synthCommand.describe as string,
  tensors: false,
  outputs: (recipe) => [{ path: requireSection(recipe, 'synth').out, key: 'synth.out' }],
  async run(recipe, opts) {
    runSynth(requireSection(recipe, 'synth'), opts);
  },
  command: synthCommand,
};
