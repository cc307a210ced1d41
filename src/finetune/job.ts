import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.js';
import { UserError } from '../io/errors.js';
import { info } from '../ui/log.js';
import { CFG_FILE, SPARSITY_FILE, readCfg, saveCheckpoint, type SaeCfg } from '../sae/checkpoint.js';
import { toTensors, disposeTensors } from '../sae/forward.js';
import { finishRecon, reconOfBatches, type ReconAcc } from '../eval/reconstruction.js';
import type { DownstreamMetrics } from '../eval/types.js';
import { METHODS, methodSpec, type FinetuneMethod, type MethodContext } from './methods.js';
import { rangeBatches } from './split.js';
import { checkFrozenEncoder, downstreamRow, pickRow, tableMarkdown, type FinetuneReport } from './table.js';

export const REPORT_JSON = 'finetune.json';
export const REPORT_MD = 'finetune.md';
export const STATE_DIR = 'trainer_state';
const CREATED_BY = 'sae-train 0.1.0';

/** `<run>/finetuned-<method>/` */
export function finetuneDir(parentDir: string, method: FinetuneMethod): string {
  return join(parentDir, `finetuned-${method}`);
}

/**
 * Downstream numbers for the table come from the eval stage (which splices
 * each checkpoint, finetunes included, into GPT-2): `<eval.out>/<run>/metrics.json`.
 * Never estimated here. Returns undefined when eval has not run on it yet.
 */
export function readEvalDownstream(evalOut: string | undefined, runName: string): Partial<DownstreamMetrics> | undefined {
  if (!evalOut) return undefined;
  const p = join(evalOut, runName, 'metrics.json');
  if (!existsSync(p)) return undefined;
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as Partial<DownstreamMetrics>;
  } catch {
    return undefined;
  }
}

/** eval names output folders after checkpoint folders: `<run folder>` and `<run folder>__finetuned-<method>`. */
function withDownstream(r: FinetuneReport, evalOut: string | undefined): FinetuneReport {
  const parentName = basename(resolve(r.parent));
  const b = readEvalDownstream(evalOut, parentName);
  const a = readEvalDownstream(evalOut, `${parentName}__finetuned-${r.method}`);
  const src = b && a
    ? `eval stage, ${join(evalOut!, '<run>', 'metrics.json')}`
    : evalOut
      ? `not yet measured: run \`sae-train eval\` (its default checkpoints include finetunes), then \`sae-train finetune\` again to fill these rows in.`
      : 'no eval: section in the recipe; add one and run `sae-train eval` to measure ce_spliced, ce_recovered and kl_div.';
  return { ...r, before: { ...r.before, ...downstreamRow(b) }, after: { ...r.after, ...downstreamRow(a) }, downstream_source: src };
}

export interface JobInput extends Omit<MethodContext, 'outDir' | 'fresh' | 'p'> {
  method: FinetuneMethod;
  /** Held-out reconstruction sums of the parent (shared across methods). */
  before: () => Promise<ReconAcc>;
  overwrite: boolean;
  fresh: boolean;
}

function writeReport(dir: string, r: FinetuneReport): void {
  writeJsonAtomic(join(dir, REPORT_JSON), r);
  writeFileAtomic(join(dir, REPORT_MD), tableMarkdown(r));
}

/**
 * One finetune: reuse it when finished with the same settings, refuse a
 * folder holding a different one (unless --overwrite / --fresh), else fit,
 * check the frozen-encoder invariants on held-out tokens, and write the
 * checkpoint + table. Returns the report.
 */
export async function runFinetuneJob(job: JobInput): Promise<{ report: FinetuneReport; reused: boolean }> {
  const { parent, method, section, cache, split } = job;
  const outDir = finetuneDir(parent.dir, method);
  const spec = methodSpec(method, section, parent, sha256Of(join(cache.dir, 'manifest.json')), job.recipe);
  const evalOut = job.recipe.eval?.out;
  if (existsSync(outDir) && readdirSync(outDir).length > 0) {
    const old = existsSync(join(outDir, CFG_FILE)) ? (readCfg(outDir).finetune as Record<string, unknown> | undefined) : readStateSpec(outDir);
    const same = old !== undefined && JSON.stringify(old) === JSON.stringify(spec);
    if (job.fresh || (!same && job.overwrite)) {
      rmSync(outDir, { recursive: true, force: true });
    } else if (!same) {
      const diff = old ? Object.keys(spec).filter((k) => JSON.stringify(spec[k]) !== JSON.stringify(old[k])) : [];
      throw new UserError(`${outDir}: holds a different finetune${diff.length ? ` (differs in ${diff.join(', ')})` : ' (no readable settings)'}. Pass --overwrite to replace it, or --fresh to redo every finetune.`);
    } else if (existsSync(join(outDir, CFG_FILE)) && existsSync(join(outDir, REPORT_JSON))) {
      const r = withDownstream(JSON.parse(readFileSync(join(outDir, REPORT_JSON), 'utf8')) as FinetuneReport, evalOut);
      writeReport(outDir, r);
      info(`${outDir}: finished earlier with the same settings: reused (--fresh to redo).`);
      return { report: r, reused: true };
    }
  }
  writeJsonAtomic(join(outDir, STATE_DIR, 'spec.json'), spec);
  const t0 = Date.now();
  const p = toTensors(parent.weights);
  try {
    const { weights, fit } = await METHODS[method]({ ...job, p, outDir, fresh: job.fresh });
    const beforeAcc = await job.before();
    const q = toTensors(weights);
    const afterAcc = await reconOfBatches(q, rangeBatches(cache, section.batch_size, split.heldoutStart, split.total));
    disposeTensors(q);
    checkFrozenEncoder(parent.weights, weights, beforeAcc.fired, afterAcc.fired, beforeAcc.l0, afterAcc.l0);
    const runName = `${parent.cfg.run_name}__finetuned-${method}`;
    const report = withDownstream({
      run: runName,
      parent: parent.dir,
      parent_run: parent.cfg.run_name,
      method,
      heldout: {
        cache: cache.dir, rows: [split.heldoutStart, split.total], tokens: split.total - split.heldoutStart,
        note: `the last ${split.total - split.heldoutStart} tokens of ${cache.dir} (rows ${split.heldoutStart}–${split.total}), never used to fit this finetune (the parent was trained on the whole cache).`,
      },
      fit,
      before: pickRow(finishRecon(beforeAcc)),
      after: pickRow(finishRecon(afterAcc)),
      downstream_source: '',
      seconds: (Date.now() - t0) / 1000,
      created_by: CREATED_BY,
    }, evalOut);
    writeReport(outDir, report);
    if (existsSync(join(parent.dir, SPARSITY_FILE))) copyFileSync(join(parent.dir, SPARSITY_FILE), join(outDir, SPARSITY_FILE)); // same encoder: same firing
    const cfg: SaeCfg = {
      ...parent.cfg, run_name: runName, parent: parent.dir, finetune_method: method, finetune: spec, created_by: CREATED_BY,
    };
    saveCheckpoint(outDir, cfg, weights);
    rmSync(join(outDir, STATE_DIR), { recursive: true, force: true });
    return { report, reused: false };
  } finally {
    disposeTensors(p);
  }
}

function readStateSpec(outDir: string): Record<string, unknown> | undefined {
  const p = join(outDir, STATE_DIR, 'spec.json');
  if (!existsSync(p)) return undefined;
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

export function sha256Of(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}
