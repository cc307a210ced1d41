import { z } from 'zod';
import { BACKENDS } from '../backend/picker.js';

/**
 * The recipe schema: every key, its type and its default, in one place
 * (recipes/README.md documents them). Objects are strict: unknown keys are errors.
 */

/** A value or a non-empty list of values; a list is a sweep. */
const sweep = <T extends z.ZodType>(t: T) => z.union([t, z.array(t).min(1)]);
const posInt = () => z.number().int().positive();
const paths = () => z.union([z.string(), z.array(z.string())]).transform((v) => (Array.isArray(v) ? v : [v]));

export const SynthSchema = z.strictObject({
  d_in: posInt().default(64),
  n_features: posInt().default(256),
  /** Expected number of active ground-truth features per token. */
  active_features: z.number().positive().default(4),
  tokens: posInt().default(200_000),
  seed: z.number().int().default(0),
  shard_tokens: posInt().default(65_536),
  dtype: z.enum(['float32', 'float16']).default('float32'),
  out: z.string().default('cache/synthetic'),
});

export const HarvestSchema = z.strictObject({
  corpus: paths(),
  hooks: z.array(z.string()).min(1),
  context_size: posInt().default(128),
  prepend_bos: z.boolean().default(true),
  exclude_bos: z.boolean().default(false),
  tokens: posInt().default(200_000),
  dtype: z.enum(['float32', 'float16']).default('float32'),
  shard_tokens: posInt().default(65_536),
  /** Sequences per forward pass. */
  batch_size: posInt().default(8),
  /** TransformerLens-style weight processing; off = raw Hugging Face activations. */
  fold_ln: z.boolean().default(false),
  center_writing_weights: z.boolean().default(false),
  out: z.string(),
});

export const TrainSchema = z.strictObject({
  /** Default: harvest.out. */
  cache: z.string().optional(),
  hook: sweep(z.string()).optional(),
  d_sae: sweep(posInt()),
  seed: sweep(z.number().int()).default(0),
  l1_coefficient: sweep(z.number().nonnegative()).default(5),
  lr: sweep(z.number().positive()).default(4e-4),
  batch_size: posInt().default(1024),
  tokens: posInt().default(2_000_000),
  l1_warmup_tokens: z.number().int().nonnegative().default(0),
  lr_warmup_tokens: z.number().int().nonnegative().default(0),
  lr_decay_tokens: z.number().int().nonnegative().default(0),
  normalize_activations: z.enum(['none', 'expected_norm']).default('expected_norm'),
  decoder: z.enum(['norm_weighted_l1', 'unit_norm']).default('norm_weighted_l1'),
  b_dec_init: z.enum(['geometric_median', 'mean', 'zeros']).default('geometric_median'),
  adam_beta1: z.number().min(0).max(1).default(0.9),
  adam_beta2: z.number().min(0).max(1).default(0.999),
  /** Clip the gradient's global norm to this (Anthropic clips to 1); 0 turns clipping off. */
  grad_clip_norm: z.number().nonnegative().default(1),
  /** Seeds the data order (shuffle stream), separately from the runs' seeds, so a sweep shares one data order. */
  data_seed: z.number().int().default(0),
  /** Rows held in the shuffle buffer (bounded memory whatever the cache size). */
  shuffle_buffer_tokens: posInt().default(131_072),
  /** A feature that has not fired in this many tokens counts as dead. */
  dead_window_tokens: posInt().default(1_000_000),
  checkpoint_every_tokens: posInt().default(500_000),
  log_every_steps: posInt().default(10),
  out: z.string(),
});

export const FINETUNE_METHODS = ['scale', 'feature_scale', 'decoder', 'decoder_kl'] as const;
const finetuneMethod = () => z.enum(FINETUNE_METHODS, { error: `not a finetune method: the valid ones are ${FINETUNE_METHODS.join(', ')}` });
export const FinetuneSchema = z.strictObject({
  /** A method or a list of them (a sweep: one finetune per method). */
  method: z.union([finetuneMethod(), z.array(finetuneMethod()).min(1)], {
    error: `not a finetune method or list of them: the valid ones are ${FINETUNE_METHODS.join(', ')}`,
  }),
  tokens: posInt().default(200_000),
  /** Default: train.cache. */
  cache: z.string().optional(),
  /** Default: every run under train.out. */
  checkpoints: z.array(z.string()).default([]),
  lr: z.number().positive().default(1e-4),
  batch_size: posInt().default(1024),
  /** Ridge added to the normal equations of feature_scale, relative to their mean diagonal. */
  ridge: z.number().nonnegative().default(1e-6),
  /** feature_scale: closed form (Cholesky) up to d_sae 8192 under auto, else Adam. */
  feature_scale_solver: z.enum(['auto', 'cholesky', 'adam']).default('auto'),
  /** lr of feature_scale's Adam path (the scales are dimensionless, near 1). */
  scale_lr: z.number().positive().default(1e-2),
  /** The cache's last rows, never fitted on: the before/after table is measured there. */
  heldout_tokens: posInt().default(20_000),
  /** How often a decoder finetune saves its resume state. */
  checkpoint_every_tokens: posInt().default(100_000),
  /** decoder / decoder_kl: linear lr warm-up and decay (to 0 at the end), as in train. */
  lr_warmup_tokens: z.number().int().nonnegative().default(0),
  lr_decay_tokens: z.number().int().nonnegative().default(0),
  /** decoder: rows in the shuffle buffer, and the data order's seed. */
  shuffle_buffer_tokens: posInt().default(131_072),
  seed: z.number().int().default(0),
  /** decoder_kl: text to fit on (default harvest.corpus; never eval.corpus) and its window length (default: the cache's context_size). */
  corpus: paths().optional(),
  context_size: posInt().optional(),
  /** decoder_kl: windows per step, and windows held out (the first ones) to measure KL before/after. */
  kl_batch_size: posInt().default(2),
  kl_heldout_windows: posInt().default(32),
});

/** eval.features: what is kept per feature while eval runs (src/features/). */
export const EvalFeaturesSchema = z.strictObject({
  /** Features 0..max_features−1 are tracked; default every feature. */
  max_features: posInt().optional(),
  contexts_per_feature: posInt().default(20),
  context_window: z.number().int().nonnegative().default(8),
  /** Most promoted and most suppressed tokens kept per feature. */
  logit_tokens: posInt().default(10),
});

/** eval.attention: how many top-k features a downstream attention head needs (src/eval/attention/). */
export const AttentionPromptSchema = z.strictObject({
  text: z.string().min(1),
  /** Tokens whose attention mass is reported (each located in the text before the query). */
  targets: z.array(z.string().min(1)).default([]),
  /** Query position: index into the text's tokens (BOS not counted), negative from the end. */
  position: z.number().int().default(-1),
  /** Prompts of one group with variants (base, swapped, rare) are compared in the report. */
  id: z.string().optional(),
  group: z.string().optional(),
  variant: z.string().optional(),
});
export const AttentionSchema = z.strictObject({
  /** Heads as "L.H" (a quoted string, or a number such as 9.6), or a bare layer L for all its heads. Empty: per SAE, every head of the 2 layers after its hook. */
  heads: z.array(z.union([z.string(), z.number()], { error: 'a head is "L.H" (e.g. "9.6") or a layer number' })).default([]),
  /** A list (text or {text, targets, position}) or a JSONL file of such objects. Empty: the built-in IOI-style set. */
  prompts: z.union([z.string(), z.array(z.union([z.string(), AttentionPromptSchema]))]).default([]),
  ks: z.array(z.union([posInt(), z.literal('all')], { error: 'a k is a positive integer or all' })).min(1).default([1, 2, 3, 5, 8, 16, 32, 'all']),
  /** Drop-lowest ks measured as well (each token's k smallest active features removed). */
  drop_lowest: z.array(posInt()).default([]),
  /** A head "keeps attending where it did" when its argmax source is unchanged and JS (nats) < this. */
  js_threshold: z.number().positive().default(0.05),
});

export const EvalSchema = z.strictObject({
  corpus: paths(),
  context_size: posInt().default(128),
  tokens: posInt().default(50_000),
  /** Sequences per forward pass. */
  batch_size: posInt().default(8),
  /** Default: every run (and finetune) under train.out. */
  checkpoints: z.array(z.string()).default([]),
  /**
   * Sets of checkpoints (run names or folders) spliced in together, one per hook. Default: one set per group
   * of evaluated runs that differ only in their hook (same d_sae, seed, l1, lr, finetune), spanning ≥ 2 hooks.
   */
  splice_all: z.array(z.array(z.string())).default([]),
  topk: z.array(posInt()).default([1, 4, 16, 64]),
  drop_lowest: z.array(posInt()).default([1, 4, 16]),
  prompts: z.array(z.string()).default(['The meaning of life is', 'In the beginning']),
  max_new_tokens: posInt().default(24),
  temperature: z.number().nonnegative().default(0.8),
  sample_seed: z.number().int().default(0),
  reference_models: z.array(z.string()).default([]),
  /** Feature statistics, top contexts and logit effects per run: true (defaults), false, or the settings. */
  features: z.union([z.boolean(), EvalFeaturesSchema]).default(true),
  /** Optional: attention patterns of downstream heads under top-k splicing (the Mary/John test). A bare `attention:` means every default. */
  attention: z.preprocess((v) => (v === null ? {} : v), AttentionSchema).optional(),
  out: z.string(),
});

export const ConsistencySchema = z.strictObject({
  checkpoints: z.array(z.string()).default([]),
  thresholds: z.array(z.number().min(0).max(1)).default([0.5, 0.7, 0.9]),
  out: z.string(),
});

export const ReportSchema = z.strictObject({
  out: z.string(),
});

export const RecipeSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'use letters, digits, ".", "_" and "-"'),
  /** Local Hugging Face folder or a hub id (gpt2, gpt2-medium, distilgpt2). */
  model: z.string().optional(),
  backend: z.enum(BACKENDS).default('auto'),
  /** checkpoint entry (folder or hf://…) → the hook its SAE reads, for folders that do not say it (sparsify). */
  hook_names: z.record(z.string(), z.string()).optional(),
  /** An SAE trained on another TransformerLens processing than harvest's: eval runs the model as the SAEs were trained (apply) or refuses them (refuse). */
  sae_processing: z.enum(['apply', 'refuse']).default('apply'),
  /** Processes a splittable stage runs in (--workers overrides); default: one per core, fewer if memory is short. */
  workers: z.number({ error: 'give a positive integer number of workers' }).int({ error: 'workers must be a whole number (e.g. workers: 2)' }).positive({ error: 'workers must be at least 1 (1 = everything in one process)' }).optional(),
  synth: SynthSchema.optional(),
  harvest: HarvestSchema.optional(),
  train: TrainSchema.optional(),
  finetune: FinetuneSchema.optional(),
  eval: EvalSchema.optional(),
  consistency: ConsistencySchema.optional(),
  report: ReportSchema.optional(),
});

export type SynthConfig = z.infer<typeof SynthSchema>;
export type HarvestConfig = z.infer<typeof HarvestSchema>;
export type TrainSection = z.infer<typeof TrainSchema>;
export type FinetuneSection = z.infer<typeof FinetuneSchema>;
export type EvalSection = z.infer<typeof EvalSchema>;
export type AttentionSection = z.infer<typeof AttentionSchema>;
export type ConsistencySection = z.infer<typeof ConsistencySchema>;
export type ReportSection = z.infer<typeof ReportSchema>;
export type RecipeInput = z.infer<typeof RecipeSchema>;

/** Examples of right values, shown in validation errors. */
export const EXAMPLES: Record<string, string> = {
  name: 'name: quickstart',
  model: 'model: models/gpt2-tiny   # or gpt2',
  backend: `backend: auto   # ${BACKENDS.join(' | ')}`,
  workers: 'workers: 2   # processes per stage; leave out for one per core',
  sae_processing: 'sae_processing: apply   # apply | refuse',
  'harvest.corpus': 'corpus: [data/train.txt]',
  'harvest.hooks': 'hooks: [blocks.2.hook_resid_pre]',
  'harvest.dtype': 'dtype: float32   # float32 | float16',
  'train.d_sae': 'd_sae: [512, 1024]   # a number or a list (sweep)',
  'train.seed': 'seed: [0, 1]',
  'train.hook': 'hook: blocks.2.hook_resid_pre',
  'train.l1_coefficient': 'l1_coefficient: 5',
  'train.lr': 'lr: 4.0e-4',
  'train.normalize_activations': 'normalize_activations: expected_norm   # none | expected_norm',
  'train.decoder': 'decoder: norm_weighted_l1   # norm_weighted_l1 | unit_norm',
  'finetune.method': `method: [scale, decoder]   # ${FINETUNE_METHODS.join(' | ')}`,
  'eval.corpus': 'corpus: [data/heldout.txt]',
};
