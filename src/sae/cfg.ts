import { z } from 'zod';
import { ARCHITECTURES, type EncoderSpec, type RuntimeNorm } from './encoder.js';

export const CHECKPOINT_FORMAT = 'sae-train.checkpoint/v1';

/**
 * cfg.json: everything needed to rebuild a run (docs/formats.md "Checkpoint (run folder)").
 * Keys follow SAELens where it has one, so that SAELens' `SAE.load_from_disk` reads a run folder as it is:
 * `normalize_activations` is what an SAE does to its input at run time ("none": the saved weights act on raw
 * activations, any training normalisation folded in), and `training_normalization` says how training scaled
 * them. Extra keys are kept (loose) so that later stages (finetune) can add theirs.
 * Training provenance (l1_coefficient, lr, tokens, …) is null for SAEs imported from other tools that do
 * not record it (`imported_from` then names the source).
 */
export const SaeCfgSchema = z.object({
  format: z.literal(CHECKPOINT_FORMAT),
  architecture: z.enum(ARCHITECTURES),
  /** topk: features kept per token. */
  k: z.number().int().positive().optional(),
  run_name: z.string(),
  d_in: z.number().int().positive(),
  d_sae: z.number().int().positive(),
  hook_name: z.string(),
  hook_layer: z.number().int(),
  model_name: z.string(),
  seed: z.number().int(),
  l1_coefficient: z.number().nullable(),
  lr: z.number().nullable(),
  tokens: z.number().int().nonnegative().nullable(),
  batch_size: z.number().int().positive().nullable(),
  apply_b_dec_to_input: z.boolean(),
  /** Runtime input normalisation, SAELens' meaning. "expected_norm" only in files written before training_normalization existed (weights folded, so: none). */
  normalize_activations: z.enum(['none', 'constant_norm_rescale', 'layer_norm', 'expected_norm']),
  /** How training normalised activations (folded into the saved weights): none | expected_norm. */
  training_normalization: z.string().optional(),
  /** The factor raw activations were multiplied by during training (already folded into the weights). */
  activation_scale: z.number(),
  decoder: z.enum(['norm_weighted_l1', 'unit_norm']).nullable(),
  backend: z.string().nullable(),
  dtype: z.literal('float32'),
  context_size: z.number().int().positive().nullable().optional(),
  prepend_bos: z.boolean().optional(),
  /** sha256 of the activation cache's manifest.json. */
  cache_manifest_sha256: z.string().nullable(),
  cache: z.string().optional(),
  /** Finetunes: the parent checkpoint folder and the method. */
  parent: z.string().nullable(),
  finetune_method: z.string().nullable().optional(),
  /** SAEs converted from other tools: { format, source, … } (src/sae/formats/). */
  imported_from: z.record(z.string(), z.unknown()).optional(),
  created_by: z.string(),
}).loose();
export type SaeCfg = z.infer<typeof SaeCfgSchema>;

/**
 * A cfg as read: files written before `training_normalization` existed said
 * `normalize_activations: expected_norm` for weights that are folded; today that is "none" + the separate key.
 */
export function upgradeCfg<T extends { normalize_activations?: unknown; training_normalization?: unknown }>(cfg: T): T {
  if (cfg.training_normalization !== undefined) return cfg;
  const n = cfg.normalize_activations;
  if (n === 'expected_norm') return { ...cfg, normalize_activations: 'none', training_normalization: 'expected_norm' };
  if (n === 'none') return { ...cfg, training_normalization: 'none' };
  return cfg;
}

/** The encoder description of a cfg (threshold from the weights file, for jumprelu). */
export function encoderOf(cfg: SaeCfg, threshold?: Float32Array): EncoderSpec {
  const n = cfg.normalize_activations;
  const inputNorm: RuntimeNorm = n === 'constant_norm_rescale' || n === 'layer_norm' ? n : 'none';
  return { architecture: cfg.architecture, k: cfg.k, threshold, applyBDecToInput: cfg.apply_b_dec_to_input, inputNorm };
}

/** Whether weights + cfg are this project's plain SAE (then no encoder description is carried). */
export function isPlainEncoder(e: EncoderSpec): boolean {
  return e.architecture === 'standard' && e.applyBDecToInput && e.inputNorm === 'none';
}
