import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../io/errors.js';
import { CFG_FILE, METRICS_FILE, SPARSITY_FILE, WEIGHTS_FILE, readCfg, type SaeCfg } from '../sae/checkpoint.js';
import { CACHE_KEYS, cfgDifferences } from './config.js';
import { STATE_DIR, hasTrainerState, loadTrainerState, readStateJson, removeTrainerState, type HostTrainState } from './state.js';
import { checkBackendChange, recordIn } from '../backend/record.js';
import { warn } from '../ui/log.js';

/** What to do with a run's output folder. */
export type RunDirPlan =
  | { kind: 'finished'; dir: string }
  | { kind: 'resume'; dir: string; state: HostTrainState }
  /** `clear`: what to delete first (the whole folder, or only files of an earlier attempt); see clearRunDir. */
  | { kind: 'new'; dir: string; clear: 'folder' | 'attempt' };

/**
 * Decides between reusing a finished run, resuming an unfinished one and
 * starting over, from what the folder holds and the flags:
 * - the same run finished: reuse it (`fresh`: retrain);
 * - the same run unfinished: resume from trainer_state/ (`fresh`: start over);
 * - the same run, finished or not, on a different cache (d_in or manifest): refuse (`fresh`/`overwrite`: start over;
 *   a pipeline rerun with --fresh re-harvests first, and its cache may differ in rounding on another backend);
 * - a different run: refuse (`overwrite`: replace it).
 * `wanted` is the cfg the run would be written with (identity keys matter; its backend record is the one this
 * process runs, which a resume must match unless `allowBackendChange`: src/backend/record.ts).
 * Deletes nothing: the caller clears a `new` folder (clearRunDir) once every check has passed.
 */
export function planRunDir(dir: string, wanted: SaeCfg, opts: { fresh: boolean; overwrite: boolean; allowBackendChange?: boolean }, cache: string): RunDirPlan {
  const startOver = (): RunDirPlan => ({ kind: 'new', dir, clear: 'folder' });
  if (existsSync(join(dir, CFG_FILE))) {
    const diffs = cfgDifferences(readCfg(dir), wanted);
    if (diffs.length === 0) {
      if (opts.fresh) return startOver();
      removeTrainerState(dir); // left behind if a kill came between cfg.json and its removal
      return { kind: 'finished', dir };
    }
    const otherCache = cacheOnly(diffs);
    if (opts.overwrite || (opts.fresh && otherCache)) return startOver();
    if (otherCache)
      throw new UserError(`${dir}: this finished run was trained on a different activation cache than ${cache} holds now (${diffs.join('; ')}). Pass --fresh to retrain it on this cache, or choose another train.out to keep it.`);
    throw new UserError(`${dir}: holds a different finished run (${diffs.join('; ')}). Choose another train.out, or pass --overwrite to replace it.`);
  }
  if (hasTrainerState(dir)) {
    const saved = readStateJson(dir).cfg;
    const diffs = cfgDifferences(saved, wanted);
    if (diffs.length === 0) return opts.fresh ? startOver() : { kind: 'resume', dir, state: resumedOn(loadTrainerState(dir), wanted, dir, !!opts.allowBackendChange) };
    if (cacheOnly(diffs)) {
      if (opts.fresh || opts.overwrite) return startOver();
      throw new UserError(`${dir}: this unfinished run was started on a different activation cache than ${cache} holds now (${diffs.join('; ')}); resuming would mix two datasets. Restore the cache it started on, or pass --fresh to start the run over.`);
    }
    if (opts.overwrite) return startOver();
    throw new UserError(`${dir}: holds a different unfinished run (${diffs.join('; ')}). Choose another train.out, or pass --overwrite to replace it.`);
  }
  // Nothing to keep (at most metrics of a run killed before its first checkpoint).
  return { kind: 'new', dir, clear: 'attempt' };
}

/**
 * The state to resume on this backend: the same record, as saved; another one only with allowBackendChange, the
 * cfg then carrying the new record and the change (backend_changes), since bit-identity no longer holds.
 */
function resumedOn(state: HostTrainState, wanted: SaeCfg, dir: string, allow: boolean): HostTrainState {
  const saved = recordIn(state.cfg), now = recordIn(wanted);
  const note = checkBackendChange(`${dir}: resuming at step ${state.step}`, saved, now, allow);
  if (!note) return state;
  warn(note);
  const changes = [...((state.cfg.backend_changes as unknown[] | undefined) ?? []), { step: state.step, from: saved, to: now }];
  return { ...state, cfg: { ...state.cfg, backend: now.backend, backend_detail: now.backend_detail, backend_adapter: now.backend_adapter, backend_changes: changes } };
}

/** Whether every difference is in the cache keys (d_in, manifest): the same run on other data. */
function cacheOnly(diffs: string[]): boolean {
  return diffs.length > 0 && diffs.every((d) => CACHE_KEYS.some((k) => d.startsWith(`${k}:`)));
}

/** Empties the folder of a run about to start: all of it, or only the files of an earlier attempt (other files are left alone). */
export function clearRunDir(plan: Extract<RunDirPlan, { kind: 'new' }>): void {
  if (plan.clear === 'folder') rmSync(plan.dir, { recursive: true, force: true });
  else for (const f of [METRICS_FILE, SPARSITY_FILE, WEIGHTS_FILE, STATE_DIR]) rmSync(join(plan.dir, f), { recursive: true, force: true });
}
