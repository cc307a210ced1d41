import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeJsonAtomic } from '../io/atomic.js';
import { UserError, fsError } from '../io/errors.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import { firstNonFinite, weightShapes, WEIGHT_NAMES, type SaeWeights } from './weights.js';

export const CHECKPOINT_FORMAT = 'sae-train.checkpoint/v1';

/**
 * cfg.json: everything needed to rebuild a run (DESIGN.md "Checkpoint").
 * Keys follow SAELens where it has one. Extra keys are kept (loose) so that
 * later stages (finetune) can add theirs.
 */
export const SaeCfgSchema = z.object({
  format: z.literal(CHECKPOINT_FORMAT),
  architecture: z.literal('standard'),
  run_name: z.string(),
  d_in: z.number().int().positive(),
  d_sae: z.number().int().positive(),
  hook_name: z.string(),
  hook_layer: z.number().int(),
  model_name: z.string(),
  seed: z.number().int(),
  l1_coefficient: z.number(),
  lr: z.number(),
  tokens: z.number().int().nonnegative(),
  batch_size: z.number().int().positive(),
  apply_b_dec_to_input: z.literal(true),
  normalize_activations: z.enum(['none', 'expected_norm']),
  /** The factor raw activations were multiplied by during training (already folded into the weights). */
  activation_scale: z.number(),
  decoder: z.enum(['norm_weighted_l1', 'unit_norm']),
  backend: z.string(),
  dtype: z.literal('float32'),
  context_size: z.number().int().positive().optional(),
  /** sha256 of the activation cache's manifest.json. */
  cache_manifest_sha256: z.string(),
  cache: z.string().optional(),
  /** Finetunes: the parent checkpoint folder and the method. */
  parent: z.string().nullable(),
  finetune_method: z.string().nullable().optional(),
  created_by: z.string(),
}).loose();
export type SaeCfg = z.infer<typeof SaeCfgSchema>;

export const CFG_FILE = 'cfg.json';
export const WEIGHTS_FILE = 'sae_weights.safetensors';
export const SPARSITY_FILE = 'sparsity.safetensors';
export const METRICS_FILE = 'metrics.jsonl';

export function isCheckpoint(dir: string): boolean {
  return existsSync(join(dir, CFG_FILE)) && existsSync(join(dir, WEIGHTS_FILE));
}

/** Writes weights (and sparsity) first and cfg.json last, each atomically: a folder with cfg.json is complete. */
export function saveCheckpoint(dir: string, cfg: SaeCfg, w: SaeWeights, sparsityLog10?: Float32Array): void {
  const bad = firstNonFinite(w);
  if (bad) throw new Error(`refusing to save ${dir}: ${bad} holds NaN or Inf`);
  const shapes = weightShapes(w.dIn, w.dSae);
  writeSafetensors(join(dir, WEIGHTS_FILE), {
    W_enc: { shape: shapes.W_enc, data: w.W_enc },
    b_enc: { shape: shapes.b_enc, data: w.b_enc },
    W_dec: { shape: shapes.W_dec, data: w.W_dec },
    b_dec: { shape: shapes.b_dec, data: w.b_dec },
  }, { format: 'pt' });
  if (sparsityLog10) writeSafetensors(join(dir, SPARSITY_FILE), { sparsity: { shape: [w.dSae], data: sparsityLog10 } }, { format: 'pt' });
  writeJsonAtomic(join(dir, CFG_FILE), cfg);
}

export function readCfg(dir: string): SaeCfg {
  const path = join(dir, CFG_FILE);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    if (err instanceof SyntaxError) throw new UserError(`${path}: not valid JSON.`);
    throw fsError(err, path, 'read a checkpoint config');
  }
  const r = SaeCfgSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new UserError(`${path}: key "${i.path.join('.')}": ${i.message}. Is this a sae-train checkpoint (format ${CHECKPOINT_FORMAT})?`);
  }
  return r.data;
}

/** Loads cfg.json + sae_weights.safetensors, checking shapes and finiteness. */
export function loadCheckpoint(dir: string): { cfg: SaeCfg; weights: SaeWeights } {
  const cfg = readCfg(dir);
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
  const bad = firstNonFinite(weights);
  if (bad) throw new UserError(`${path}: tensor "${bad}" holds NaN or Inf values. The run diverged; retrain it (lower lr or l1_coefficient) or evaluate another checkpoint.`);
  return { cfg, weights };
}

/** Every checkpoint folder under `root` (runs and their finetuned-* children), sorted by path. */
export function listCheckpoints(root: string): string[] {
  if (!existsSync(root)) return [];
  const out: string[] = [];
  const walk = (dir: string, depth: number) => {
    if (isCheckpoint(dir)) out.push(dir);
    if (depth === 0) return;
    for (const e of readdirSync(dir)) {
      const p = join(dir, e);
      if (!e.startsWith('.') && e !== 'trainer_state' && statSync(p).isDirectory()) walk(p, depth - 1);
    }
  };
  walk(root, 2);
  return out.sort();
}
