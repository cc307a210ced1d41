import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { UserError } from '../io/errors.js';
import { saeProcessing } from '../sae/provenance.js';
import type { Gpt2Config } from '../model/config.js';
import { checkHookNames, hookLayer, hookWidth } from '../model/gpt2.js';
import { isCheckpoint, listCheckpoints, loadCheckpoint, WEIGHTS_FILE, type LoadOptions, type SaeCfg } from '../sae/checkpoint.js';
import type { SaeWeights } from '../sae/weights.js';

/**
 * Which checkpoints eval looks at, what their outputs are called, and whether they fit the model.
 */

/** The output folder name of a checkpoint: its folder name; a finetune's is `<run>__finetuned-<method>`. */
export function evalRunName(dir: string): string {
  const b = basename(resolve(dir));
  return b.startsWith('finetuned-') ? `${basename(dirname(resolve(dir)))}__${b}` : b;
}

/** eval.checkpoints, or every finished run and finetune under train.out. Unfinished runs are skipped with a note. */
export function evalCheckpointDirs(checkpoints: readonly string[], trainOut: string | undefined, recipePath: string, note: (msg: string) => void): string[] {
  if (checkpoints.length) {
    for (const d of checkpoints)
      if (!isCheckpoint(d)) throw new UserError(`${recipePath}: eval.checkpoints: "${d}" is not a checkpoint (no ${join(d, 'cfg.json')} and ${join(d, WEIGHTS_FILE)}). Fix the path or train it first.`);
    return dedupe(checkpoints);
  }
  if (!trainOut) throw new UserError(`${recipePath}: eval.checkpoints is empty and there is no train: section to find runs in. Name them, e.g. checkpoints: [checkpoints/quickstart/<run>]`);
  const dirs = listCheckpoints(trainOut).filter((d) => {
    if (!existsSync(join(d, 'trainer_state'))) return true;
    note(`${d}: training unfinished (trainer_state/ present): skipped. Finish it with \`sae-train train\`.`);
    return false;
  });
  if (!dirs.length) throw new UserError(`no finished runs under train.out (${trainOut}). Run \`sae-train train ${recipePath}\` first, or list eval.checkpoints.`);
  return dirs;
}

function dedupe(dirs: readonly string[]): string[] {
  const seen = new Set<string>();
  return dirs.filter((d) => !seen.has(resolve(d)) && !!seen.add(resolve(d)));
}

/** Throws when two checkpoints would write to the same output folder. */
export function checkUniqueNames(dirs: readonly string[]): void {
  const byName = new Map<string, string>();
  for (const d of dirs) {
    const n = evalRunName(d);
    const other = byName.get(n);
    if (other) throw new UserError(`eval.checkpoints: "${other}" and "${d}" would both be written to <eval.out>/${n}. Evaluate them in separate recipes (different eval.out).`);
    byName.set(n, d);
  }
}

export interface EvalCheckpoint {
  name: string;
  dir: string;
  cfg: SaeCfg;
  weights: SaeWeights;
  layer: number;
}

/**
 * Loads a checkpoint and checks it against the model: its hook must exist and carry d_in floats per token.
 * Errors (UserError) name the folder and the fix. NaN weights are refused by loadCheckpoint.
 */
export function loadEvalCheckpoint(dir: string, c: Gpt2Config, model: { name: string; processing: string }, opts: LoadOptions = {}, processingFix = ''): EvalCheckpoint {
  const { cfg, weights } = loadCheckpoint(dir, opts);
  checkHookNames(c, [cfg.hook_name], `${join(dir, 'cfg.json')}: hook_name`);
  const width = hookWidth(c, cfg.hook_name);
  if (width !== cfg.d_in)
    throw new UserError(`${dir}: the SAE has d_in ${cfg.d_in}, but hook "${cfg.hook_name}" of model ${model.name} carries ${width} floats per token. Was it trained on another model (cfg.json says ${cfg.model_name})? Set model: to that model.`);
  // imports too: their cfg.json records what the source said (model_from_pretrained_kwargs)
  const trained = saeProcessing(cfg, dir);
  if (trained !== undefined && trained.label !== model.processing)
    throw new UserError(`${dir}: the SAE was trained on activations of the model with weight processing "${trained.label}" (${trained.from}), but eval runs it with "${model.processing}". ${processingFix}`.trim());
  return { name: evalRunName(dir), dir, cfg, weights, layer: hookLayer(c, cfg.hook_name) };
}

/** Grouping key for the default all-at-once sets: everything but the hook. */
function setKey(cfg: SaeCfg): string {
  return JSON.stringify([cfg.d_sae, cfg.seed, cfg.l1_coefficient, cfg.lr, cfg.finetune_method ?? null]);
}

/**
 * The all-at-once sets: eval.splice_all (entries are run names or checkpoint folders), or by default one set
 * per group of runs that differ only in their hook (same d_sae, seed, l1, lr, finetune), when it spans ≥ 2 hooks.
 */
export function spliceSets(spliceAll: readonly (readonly string[])[], runs: readonly { name: string; dir: string; cfg: SaeCfg }[], recipePath: string): string[][] {
  if (spliceAll.length) {
    return spliceAll.map((set, i) => {
      const names = set.map((entry) => {
        const r = runs.find((x) => x.name === entry || resolve(x.dir) === resolve(entry));
        if (!r) throw new UserError(`${recipePath}: eval.splice_all[${i}]: "${entry}" is not among the evaluated runs (${runs.map((x) => x.name).join(', ')}).`);
        return r.name;
      });
      const hooks = names.map((n) => runs.find((x) => x.name === n)!.cfg.hook_name);
      const dup = hooks.find((h, j) => hooks.indexOf(h) !== j);
      if (dup) throw new UserError(`${recipePath}: eval.splice_all[${i}] has two SAEs at hook ${dup}; a set splices one SAE per hook.`);
      return names;
    });
  }
  const groups = new Map<string, { name: string; hook: string }[]>();
  for (const r of runs) {
    const k = setKey(r.cfg);
    const g = groups.get(k) ?? [];
    if (!g.some((x) => x.hook === r.cfg.hook_name)) g.push({ name: r.name, hook: r.cfg.hook_name });
    groups.set(k, g);
  }
  return [...groups.values()].filter((g) => g.length >= 2).map((g) => g.map((x) => x.name));
}

/** The run a finetune came from (its folder name), else null. */
export function parentName(cfg: SaeCfg, dir: string): string | null {
  if (cfg.parent) return basename(resolve(cfg.parent));
  return basename(resolve(dir)).startsWith('finetuned-') ? basename(dirname(resolve(dir))) : null;
}
