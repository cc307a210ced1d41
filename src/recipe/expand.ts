import { UserError } from '../io/errors.js';
import type { TrainSection } from './schema.js';

/** One SAE to train: the train section with every sweep field resolved to a single value. */
export interface Run {
  name: string;
  hook: string;
  d_sae: number;
  seed: number;
  l1_coefficient: number;
  lr: number;
}

const SWEPT = ['hook', 'd_sae', 'l1_coefficient', 'lr', 'seed'] as const;

const asList = <T>(v: T | readonly T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? [...v] : [v as T]);

/** Formats a number for a folder name: 4e-4 → "0.0004", 5 → "5". */
function fmt(v: number): string {
  return String(v).replace('+', '');
}

/**
 * The run name: `<hook>__d<d_sae>__l1_<coef>__lr_<lr>__s<seed>` with only the
 * swept fields (hook always, so folders of several layers never collide).
 */
export function runName(run: Omit<Run, 'name'>, swept: ReadonlySet<string>): string {
  const parts = [run.hook.replace(/[^A-Za-z0-9._-]/g, '_')];
  if (swept.has('d_sae')) parts.push(`d${run.d_sae}`);
  if (swept.has('l1_coefficient')) parts.push(`l1_${fmt(run.l1_coefficient)}`);
  if (swept.has('lr')) parts.push(`lr_${fmt(run.lr)}`);
  if (swept.has('seed')) parts.push(`s${run.seed}`);
  return parts.join('__');
}

/**
 * The cartesian product of the sweep fields, in a fixed order (hook, d_sae,
 * l1, lr, seed). Pure. `cacheHooks` supplies the hook when the section has none.
 */
export function expandRuns(train: Pick<TrainSection, 'hook' | 'd_sae' | 'seed' | 'l1_coefficient' | 'lr'>, cacheHooks: string[] = []): Run[] {
  const lists = {
    hook: asList(train.hook).length ? asList(train.hook) : cacheHooks,
    d_sae: asList(train.d_sae),
    l1_coefficient: asList(train.l1_coefficient),
    lr: asList(train.lr),
    seed: asList(train.seed),
  };
  if (lists.hook.length === 0) throw new UserError('train.hook: no hook given and the cache names none. Example: hook: blocks.2.hook_resid_pre');
  const swept = new Set<string>(SWEPT.filter((k) => Array.isArray(train[k]) && (train[k] as unknown[]).length > 1));
  const runs: Run[] = [];
  for (const hook of lists.hook)
    for (const d_sae of lists.d_sae)
      for (const l1_coefficient of lists.l1_coefficient)
        for (const lr of lists.lr)
          for (const seed of lists.seed) {
            const r = { hook, d_sae, l1_coefficient, lr, seed };
            runs.push({ name: runName(r, swept), ...r });
          }
  const names = new Set(runs.map((r) => r.name));
  if (names.size !== runs.length) throw new UserError(`train: a sweep list repeats a value, so two runs would share a name (${runs.map((r) => r.name).join(', ')}). Remove the repeat.`);
  return runs;
}
