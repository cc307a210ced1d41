import type { CacheReader } from '../activations/cache.js';
import { createProgress } from '../cli/progress.js';
import { info } from '../cli/log.js';
import type { Recipe } from '../recipe/load.js';
import type { FinetuneSection } from '../recipe/schema.js';
import { FINETUNE_METHODS } from '../recipe/schema.js';
import type { SaeCfg } from '../sae/checkpoint.js';
import type { SaeTensors } from '../sae/forward.js';
import type { SaeWeights } from '../sae/weights.js';
import { fitScale, foldScale } from './scale.js';
import { FEATURE_SCALE_MAX_CLOSED_FORM, fitFeatureScales, foldFeatureScales } from './feature_scale.js';
import { rangeBatches, type Split } from './split.js';
import { decoderMethod } from './decoder.js';

export type FinetuneMethod = (typeof FINETUNE_METHODS)[number];

/** A trained run to finetune. */
export interface ParentRun {
  dir: string;
  cfg: SaeCfg;
  weights: SaeWeights;
  /** sha256 of its sae_weights.safetensors: a finetune of other weights is a different finetune. */
  weightsSha256: string;
}

export interface MethodContext {
  parent: ParentRun;
  /** The parent's weights as tensors (read-only; owned by the caller). */
  p: SaeTensors;
  cache: CacheReader;
  split: Split;
  section: FinetuneSection;
  recipe: Recipe;
  /** The finetune's folder (resume state lives in <outDir>/trainer_state/). */
  outDir: string;
  /** Start over instead of resuming. */
  fresh: boolean;
  /** Called after each optimizer step of iterative methods (tests use it to simulate a kill). */
  afterStep?: (step: number) => void;
}

export interface MethodResult {
  weights: SaeWeights;
  /** What was fitted, for finetune.json: tokens used and method details. */
  fit: { tokens: number; rows: [number, number] } & Record<string, unknown>;
}

export type MethodFn = (ctx: MethodContext) => Promise<MethodResult>;

/** Rows a single-pass method fits on: the head of the fitting part, at most finetune.tokens. */
function singlePassRows(ctx: MethodContext): number {
  const rows = Math.min(ctx.section.tokens, ctx.split.fitRows);
  if (rows < ctx.section.tokens)
    info(`  finetune.tokens is ${ctx.section.tokens}, but the cache has ${ctx.split.fitRows} fitting tokens (held-out tail excluded): one pass over those.`);
  return rows;
}

async function scaleMethod(ctx: MethodContext): Promise<MethodResult> {
  const rows = singlePassRows(ctx);
  const bar = createProgress('scale', rows);
  const { c } = await fitScale(ctx.p, ctx.cache.dIn, rangeBatches(ctx.cache, ctx.section.batch_size, 0, rows), (n) => bar.update(n));
  bar.stop();
  info(`  c = ${c.toPrecision(6)} (W_dec ← c·W_dec)`);
  return { weights: foldScale(ctx.parent.weights, c), fit: { tokens: rows, rows: [0, rows], scale: c } };
}

async function featureScaleMethod(ctx: MethodContext): Promise<MethodResult> {
  const dSae = ctx.parent.cfg.d_sae;
  if (dSae > FEATURE_SCALE_MAX_CLOSED_FORM) return featureScaleAdam(ctx);
  const rows = singlePassRows(ctx);
  const bar = createProgress('feature_scale', rows);
  const sol = await fitFeatureScales(ctx.p, ctx.cache.dIn, rangeBatches(ctx.cache, ctx.section.batch_size, 0, rows), ctx.section.ridge, (n) => bar.update(n));
  bar.stop();
  for (const n of sol.notes) info(`  note: ${n}`);
  const s = Array.from(sol.scales);
  const sorted = [...s].sort((a, b) => a - b);
  info(`  per-feature scales (closed form, ${sol.live} live of ${dSae}; dead ones stay 1): median ${sorted[Math.floor(sorted.length / 2)].toPrecision(4)}, range [${sorted[0].toPrecision(4)}, ${sorted[sorted.length - 1].toPrecision(4)}]`);
  return {
    weights: foldFeatureScales(ctx.parent.weights, sol.scales),
    fit: {
      tokens: rows, rows: [0, rows], solver: 'cholesky (float64 normal equations)', live_features: sol.live,
      ridge: sol.ridge, lambda: sol.lambda, min_pivot_ratio: sol.minPivotRatio, notes: sol.notes, scales: s,
    },
  };
}

async function featureScaleAdam(ctx: MethodContext): Promise<MethodResult> {
  throw new Error(`feature_scale: d_sae ${ctx.parent.cfg.d_sae} > ${FEATURE_SCALE_MAX_CLOSED_FORM} needs the Adam path, not built yet`);
}

export const METHODS: Record<FinetuneMethod, MethodFn> = {
  scale: scaleMethod,
  feature_scale: featureScaleMethod,
  decoder: decoderMethod,
  decoder_kl: async () => { throw new Error('decoder_kl: not built yet'); },
};

/** The settings that make two finetunes the same one (compared to reuse or refuse an existing folder). */
export function methodSpec(method: FinetuneMethod, section: FinetuneSection, parent: ParentRun, cacheSha: string): Record<string, unknown> {
  const common = { method, heldout_tokens: section.heldout_tokens, cache_manifest_sha256: cacheSha, parent_weights_sha256: parent.weightsSha256 };
  switch (method) {
    case 'scale':
      return { ...common, tokens: section.tokens, batch_size: section.batch_size };
    case 'feature_scale':
      return { ...common, tokens: section.tokens, batch_size: section.batch_size, ridge: section.ridge, lr: section.lr };
    case 'decoder':
      return {
        ...common, tokens: section.tokens, batch_size: section.batch_size, lr: section.lr, lr_warmup_tokens: section.lr_warmup_tokens,
        lr_decay_tokens: section.lr_decay_tokens, shuffle_buffer_tokens: section.shuffle_buffer_tokens, seed: section.seed,
      };
    case 'decoder_kl':
      return { ...common, tokens: section.tokens, lr: section.lr };
  }
}
