import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../io/atomic.js';
import { UserError, fsError } from '../io/errors.js';
import { hookLayer } from '../model/gpt2.js';
import { readSafetensors, writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import { CHECKPOINT_FORMAT, encoderOf, isPlainEncoder, SaeCfgSchema, upgradeCfg, type SaeCfg } from './cfg.js';
import type { LoadOptions } from './formats/common.js';
import { detectForeign, isOwnCfg, readForeign } from './formats/detect.js';
import { firstNonFinite, weightShapes, WEIGHT_NAMES, type SaeWeights } from './weights.js';

export { CHECKPOINT_FORMAT, SaeCfgSchema, type SaeCfg } from './cfg.js';
export type { LoadOptions } from './formats/common.js';

export const CFG_FILE = 'cfg.json';
export const WEIGHTS_FILE = 'sae_weights.safetensors';
export const SPARSITY_FILE = 'sparsity.safetensors';
export const METRICS_FILE = 'metrics.jsonl';

/**
 * A checkpoint folder: this project's (cfg.json + sae_weights.safetensors), SAELens' (the same names) or
 * sparsify's (cfg.json + sae.safetensors). A folder holding pickle weights throws the conversion to use.
 */
export function isCheckpoint(dir: string): boolean {
  if (existsSync(join(dir, CFG_FILE)) && existsSync(join(dir, WEIGHTS_FILE))) return true;
  return detectForeign(dir) !== undefined;
}

/** The weights file of a checkpoint folder of any format (what eval and finetune hash to recognise it). */
export function weightsFileOf(dir: string): string {
  if (existsSync(join(dir, WEIGHTS_FILE))) return join(dir, WEIGHTS_FILE);
  return detectForeign(dir) === 'sparsify' ? join(dir, 'sae.safetensors') : join(dir, WEIGHTS_FILE);
}

/** Writes weights (and sparsity) first and cfg.json last, each atomically: a folder with cfg.json is complete. */
export function saveCheckpoint(dir: string, cfg: SaeCfg, w: SaeWeights, sparsityLog10?: Float32Array): void {
  const bad = firstNonFinite(w);
  if (bad) throw new Error(`refusing to save ${dir}: ${bad} holds NaN or Inf`);
  const shapes = weightShapes(w.dIn, w.dSae);
  const tensors: Record<string, TensorToWrite> = {
    W_enc: { shape: shapes.W_enc, data: w.W_enc },
    b_enc: { shape: shapes.b_enc, data: w.b_enc },
    W_dec: { shape: shapes.W_dec, data: w.W_dec },
    b_dec: { shape: shapes.b_dec, data: w.b_dec },
  };
  if (w.encoder?.threshold) tensors.threshold = { shape: [w.dSae], data: w.encoder.threshold };
  writeSafetensors(join(dir, WEIGHTS_FILE), tensors, { format: 'pt' });
  if (sparsityLog10) writeSafetensors(join(dir, SPARSITY_FILE), { sparsity: { shape: [w.dSae], data: sparsityLog10 } }, { format: 'pt' });
  writeJsonAtomic(join(dir, CFG_FILE), cfg);
}

/** cfg.json of a checkpoint of any format, as this project's cfg (other tools' folders converted: src/sae/formats/). */
export function readCfg(dir: string, opts: LoadOptions = {}): SaeCfg {
  if (!isOwnCfg(dir)) {
    const f = detectForeign(dir);
    if (f) return readForeign(dir, f, opts).cfg;
  }
  return readOwnCfg(dir, opts);
}

function readOwnCfg(dir: string, opts: LoadOptions): SaeCfg {
  const path = join(dir, CFG_FILE);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    if (err instanceof SyntaxError) throw new UserError(`${path}: not valid JSON.`);
    throw fsError(err, path, 'read a checkpoint config');
  }
  const r = SaeCfgSchema.safeParse(json && typeof json === 'object' ? upgradeCfg(json as Record<string, unknown>) : json);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new UserError(`${path}: key "${i.path.join('.')}": ${i.message}. Is this a sae-train checkpoint (format ${CHECKPOINT_FORMAT})?`);
  }
  // the recipe's hook_names overrides what the folder says
  return opts.hookName ? { ...r.data, hook_name: opts.hookName, hook_layer: hookLayer({ n_layer: -1 }, opts.hookName) } : r.data;
}

/**
 * Loads a checkpoint of any format into cfg + weights (with the encoder description of imported
 * architectures), checking shapes and finiteness. `opts.hookName`: the recipe's hook for folders that do not say it.
 */
export function loadCheckpoint(dir: string, opts: LoadOptions = {}): { cfg: SaeCfg; weights: SaeWeights } {
  if (!isOwnCfg(dir)) {
    const f = detectForeign(dir);
    if (f) {
      const r = readForeign(dir, f, opts);
      const bad = firstNonFinite(r.weights);
      if (bad) throw new UserError(`${dir}: tensor "${bad}" holds NaN or Inf values; this SAE cannot be evaluated.`);
      return r;
    }
  }
  const cfg = readOwnCfg(dir, opts);
  const path = join(dir, WEIGHTS_FILE);
  const { tensors } = readSafetensors(path);
  const shapes = weightShapes(cfg.d_in, cfg.d_sae);
  for (const k of WEIGHT_NAMES) {
    const t = tensors[k];
    if (!t) throw new UserError(`${path}: missing tensor "${k}" (need ${WEIGHT_NAMES.join(', ')}).`);
    if (t.shape.join(',') !== shapes[k].join(','))
      throw new UserError(`${path}: tensor "${k}" has shape [${t.shape}], but cfg.json (d_in ${cfg.d_in}, d_sae ${cfg.d_sae}) needs [${shapes[k]}].`);
  }
  const weights: SaeWeights = {
    dIn: cfg.d_in, dSae: cfg.d_sae,
    W_enc: tensors.W_enc.data, b_enc: tensors.b_enc.data, W_dec: tensors.W_dec.data, b_dec: tensors.b_dec.data,
  };
  if (cfg.architecture === 'jumprelu' && tensors.threshold?.shape.join(',') !== String(cfg.d_sae))
    throw new UserError(`${path}: a jumprelu SAE needs tensor "threshold" of shape [${cfg.d_sae}].`);
  if (cfg.architecture === 'topk' && !cfg.k) throw new UserError(`${join(dir, CFG_FILE)}: a topk SAE needs key "k" (features per token).`);
  const encoder = encoderOf(cfg, tensors.threshold?.data);
  if (!isPlainEncoder(encoder)) weights.encoder = encoder;
  const bad = firstNonFinite(weights);
  if (bad) throw new UserError(`${path}: tensor "${bad}" holds NaN or Inf values. The run diverged; retrain it (lower lr or l1_coefficient) or evaluate another checkpoint.`);
  return { cfg, weights };
}

/** Every checkpoint folder under `root` (runs and their finetuned-* children), sorted by path. */
export function listCheckpoints(root: string): string[] {
  if (!existsSync(root)) return [];
  const out: string[] = [];
  const walk = (dir: string, depth: number) => {
    let found = false;
    try {
      found = isCheckpoint(dir);
    } catch {
      // a folder of pickles under train.out is not a run; named checkpoints report the refusal instead
    }
    if (found) out.push(dir);
    if (depth === 0) return;
    for (const e of readdirSync(dir)) {
      const p = join(dir, e);
      if (!e.startsWith('.') && e !== 'trainer_state' && statSync(p).isDirectory()) walk(p, depth - 1);
    }
  };
  walk(root, 2);
  return out.sort();
}
