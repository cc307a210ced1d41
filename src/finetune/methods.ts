import * as tf from '@tensorflow/tfjs-core';
import { UserError } from '../io/errors.js';
import { encode } from '../sae/forward.js';
import { createProgress } from '../ui/progress.js';
import { info } from '../ui/log.js';
import type { Recipe } from '../recipe/load.js';
import type { FinetuneSection } from '../recipe/schema.js';
import { fitScale, foldScale } from './scale.js';
import { FEATURE_SCALE_MAX_CLOSED_FORM, featureScaleGrad, fitFeatureScales, foldFeatureScales } from './feature_scale.js';
import { adamOverStream } from './adam_loop.js';
import { rangeBatches } from './split.js';
import { decoderMethod } from './decoder.js';
import { decoderKlMethod } from './decoder_kl.js';

export type { FinetuneMethod, MethodContext, MethodFn, MethodResult, ParentRun } from './method-types.js';
import type { FinetuneMethod, MethodContext, MethodFn, MethodResult, ParentRun } from './method-types.js';

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
  const solver = ctx.section.feature_scale_solver;
  if (featureScaleUsesAdam(ctx.section, dSae)) {
    if (solver === 'auto') info(`  d_sae ${dSae} > ${FEATURE_SCALE_MAX_CLOSED_FORM}: the d_sae² normal equations would not fit (memory, Cholesky time); fitting the scales with Adam instead.`);
    return featureScaleAdam(ctx);
  }
  if (dSae > FEATURE_SCALE_MAX_CLOSED_FORM)
    throw new UserError(`finetune.feature_scale_solver: cholesky for d_sae ${dSae} would need a ${dSae}² float64 system (${(dSae * dSae * 8 / 2 ** 30).toFixed(1)} GiB); the limit is d_sae ${FEATURE_SCALE_MAX_CLOSED_FORM}. Use feature_scale_solver: auto or adam.`);
  const rows = singlePassRows(ctx);
  const bar = createProgress('feature_scale', rows);
  const sol = await fitFeatureScales(ctx.p, ctx.cache.dIn, rangeBatches(ctx.cache, ctx.section.batch_size, 0, rows), ctx.section.ridge, (n) => bar.update(n));
  bar.stop();
  for (const n of sol.notes) info(`  note: ${n}`);
  const s = Array.from(sol.scales);
  info(`  per-feature scales (closed form, ${sol.live} live of ${dSae}; dead ones stay 1): ${summarise(s)}`);
  return {
    weights: foldFeatureScales(ctx.parent.weights, sol.scales),
    fit: {
      tokens: rows, rows: [0, rows], solver: 'cholesky (float64 normal equations)', live_features: sol.live,
      ridge: sol.ridge, lambda: sol.lambda, min_pivot_ratio: sol.minPivotRatio, notes: sol.notes, scales: s,
    },
  };
}

function featureScaleUsesAdam(section: FinetuneSection, dSae: number): boolean {
  return section.feature_scale_solver === 'adam' || (section.feature_scale_solver === 'auto' && dSae > FEATURE_SCALE_MAX_CLOSED_FORM);
}

function summarise(s: number[]): string {
  const sorted = [...s].sort((a, b) => a - b);
  return `median ${sorted[Math.floor(sorted.length / 2)].toPrecision(4)}, range [${sorted[0].toPrecision(4)}, ${sorted[sorted.length - 1].toPrecision(4)}]`;
}

/** feature_scale by Adam on the scales (lr finetune.scale_lr) over the fitting stream, in training units. */
async function featureScaleAdam(ctx: MethodContext): Promise<MethodResult> {
  const { parent, p } = ctx;
  const { d_in: dIn, d_sae: dSae } = parent.cfg;
  const s = parent.cfg.activation_scale;
  const [Wn, WnT, bDecS] = tf.tidy(() => {
    const W = tf.mul(p.W_dec, s) as tf.Tensor2D;
    return [W, tf.transpose(W) as tf.Tensor2D, tf.mul(p.b_dec, s) as tf.Tensor1D];
  });
  let res;
  try {
    res = await adamOverStream({ ...ctx, section: { ...ctx.section, lr: ctx.section.scale_lr } }, {
      name: 'feature_scale',
      shape: [dSae],
      init: () => new Float32Array(dSae).fill(1),
      lossAndGrad: (x, sF) => featureScaleGrad(encode(x, p), tf.sub(tf.mul(x, s), bDecS) as tf.Tensor2D, Wn, WnT, sF as tf.Tensor1D),
      show: (loss) => ({ mse: loss / dIn }),
    });
  } finally {
    tf.dispose([Wn, WnT, bDecS]);
  }
  const scales = Float64Array.from(res.param);
  info(`  per-feature scales (Adam, ${res.steps} steps): ${summarise(Array.from(scales))}`);
  return {
    weights: foldFeatureScales(parent.weights, scales),
    fit: {
      tokens: res.steps * ctx.section.batch_size, rows: [0, ctx.split.fitRows], solver: 'adam', ...res.hyper, steps: res.steps,
      epochs: res.epochs, loss_curve: res.lossCurve, scales: Array.from(scales),
    },
  };
}

export const METHODS: Record<FinetuneMethod, MethodFn> = {
  scale: scaleMethod,
  feature_scale: featureScaleMethod,
  decoder: decoderMethod,
  decoder_kl: decoderKlMethod,
};

/** The settings that make two finetunes the same one (compared to reuse or refuse an existing folder). */
export function methodSpec(method: FinetuneMethod, section: FinetuneSection, parent: ParentRun, cacheSha: string, recipe: Recipe): Record<string, unknown> {
  const common = { method, heldout_tokens: section.heldout_tokens, cache_manifest_sha256: cacheSha, parent_weights_sha256: parent.weightsSha256 };
  switch (method) {
    case 'scale':
      return { ...common, tokens: section.tokens, batch_size: section.batch_size };
    case 'feature_scale':
      return featureScaleUsesAdam(section, parent.cfg.d_sae)
        ? {
          ...common, tokens: section.tokens, batch_size: section.batch_size, solver: 'adam', scale_lr: section.scale_lr,
          lr_warmup_tokens: section.lr_warmup_tokens, lr_decay_tokens: section.lr_decay_tokens,
          shuffle_buffer_tokens: section.shuffle_buffer_tokens, seed: section.seed,
        }
        : { ...common, tokens: section.tokens, batch_size: section.batch_size, solver: 'cholesky', ridge: section.ridge };
    case 'decoder':
      return {
        ...common, tokens: section.tokens, batch_size: section.batch_size, lr: section.lr, lr_warmup_tokens: section.lr_warmup_tokens,
        lr_decay_tokens: section.lr_decay_tokens, shuffle_buffer_tokens: section.shuffle_buffer_tokens, seed: section.seed,
      };
    case 'decoder_kl':
      return {
        ...common, tokens: section.tokens, lr: section.lr, lr_warmup_tokens: section.lr_warmup_tokens, lr_decay_tokens: section.lr_decay_tokens,
        model: recipe.model ?? null, corpus: section.corpus ?? recipe.harvest?.corpus ?? null, context_size: section.context_size ?? null, kl_batch_size: section.kl_batch_size,
        kl_heldout_windows: section.kl_heldout_windows,
      };
  }
}
