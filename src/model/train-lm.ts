/**
 * Language-model training of this project's GPT-2 (scripts/train-model.ts trains the embedded model with it):
 * next-token cross-entropy through gpt2Forward, gradients by tfjs autodiff (tf.variableGrads over the
 * model's tf.Variables), global-norm gradient clipping, and Adam (src/train/adam.ts) under a warm-up +
 * cosine learning-rate schedule.
 */
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core alone registers no kernel gradients; training needs them all (Mean, Softmax, Gather, …).
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { adamUpdate } from '../train/adam.js';
import seedrandom from 'seedrandom';
import { matMul } from '../backend/matmul.js';
import { gpt2Forward } from './gpt2.js';
import { namedParams, type Gpt2Model } from './weights.js';
import { subsetLogits, type TrainVocab } from './train-vocab.js';

export interface LmHyper {
  /** Peak learning rate. */
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Optimizer steps of the whole run. */
  totalSteps: number;
  /** Steps of linear warm-up from 0 to lr. */
  warmupSteps: number;
  /** The cosine decay ends at lr·minLrRatio on the last step. */
  minLrRatio: number;
  /** Gradients are scaled down to this global L2 norm when larger (0 = no clipping). */
  gradClip: number;
}

/**
 * Learning-rate multiplier for 0-based `step`: linear warm-up (step+1)/warmupSteps (so the first step moves),
 * then cosine from 1 down to minLrRatio at the last step (totalSteps − 1).
 */
export function lmLrScale(step: number, h: Pick<LmHyper, 'totalSteps' | 'warmupSteps' | 'minLrRatio'>): number {
  if (step < h.warmupSteps) return (step + 1) / h.warmupSteps;
  const span = Math.max(1, h.totalSteps - 1 - h.warmupSteps);
  const progress = Math.min(1, (step - h.warmupSteps) / span);
  return h.minLrRatio + (1 - h.minLrRatio) * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/** Adam's moments, one per parameter in namedParams order. */
export interface LmOptState {
  m: tf.Tensor[];
  v: tf.Tensor[];
}

export function zeroOptState(model: Gpt2Model): LmOptState {
  const ps = namedParams(model.params).map(([, t]) => t);
  return { m: ps.map((p) => tf.zerosLike(p)), v: ps.map((p) => tf.zerosLike(p)) };
}

export function disposeOptState(s: LmOptState): void {
  tf.dispose([...s.m, ...s.v]);
}

function trainableVars(model: Gpt2Model): tf.Variable[] {
  return namedParams(model.params).map(([name, t]) => {
    if (!(t instanceof tf.Variable)) throw new Error(`train-lm: parameter ${name} is not a tf.Variable; load the model with { trainable: true }`);
    return t;
  });
}

/**
 * Mean cross-entropy of logitsNV [N, V] against targetsN [N] (int32), with the fused gradient
 * d/dlogits = (softmax(logits) − onehot(targets))/N. Forward and backward use the softmax kernel (vectorised on
 * wasm) and one scatter, instead of the ~10 elementwise [N, V] ops (Exp, broadcasting Sub/Equal, …) that tfjs
 * derives for logSumExp, which cost seconds per step at [1016, 50257] on wasm. The value is −log p[target] with
 * p clamped at 1e-30, exact for any per-token loss below 69 nats.
 */
export const fusedCrossEntropy: (logitsNV: tf.Tensor2D, targetsN: tf.Tensor1D) => tf.Scalar = tf.customGrad(
  ((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [logits, targets, save] = args as [tf.Tensor2D, tf.Tensor1D, tf.GradSaveFunc];
    const [N, V] = logits.shape;
    const probs = tf.softmax(logits);
    const flat = tf.reshape(tf.add(tf.mul(tf.range(0, N, 1, 'int32'), tf.scalar(V, 'int32')), tf.cast(targets, 'int32')), [N, 1]);
    const picked = tf.gather(tf.reshape(probs, [N * V]), tf.reshape(flat, [N]));
    save([probs, flat, picked]);
    return {
      value: tf.neg(tf.mean(tf.log(tf.maximum(picked, 1e-30)))),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [p, idx, pt] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D];
        const scale = tf.div(dy, N);
        // p·scale everywhere, (p − 1)·scale at the targets.
        const g = tf.tensorScatterUpdate(tf.reshape(tf.mul(p, scale), [N * V]), idx, tf.mul(tf.sub(pt, 1), scale));
        return [tf.reshape(g, [N, V]), tf.zerosLike(targets)];
      },
    };
  }) as never,
) as unknown as (logitsNV: tf.Tensor2D, targetsN: tf.Tensor1D) => tf.Scalar;

/**
 * Mean next-token CE (nats) of windows tokensBT [B, T] over the B·(T−1) predicted positions: the same number
 * as meanCrossEntropy(gpt2Forward(model, tokens).logits), but the tied unembedding is applied to the T−1
 * predicting positions only and the loss has the fused gradient above. With `vocab`, the softmax runs over the
 * corpus's token ids and one rest logit (src/model/train-vocab.ts): the same loss up to a close approximation,
 * at the cost of |ids| instead of 50,257 columns. Every target must be among vocab.ids.
 */
export function lmLoss(model: Gpt2Model, tokensBT: tf.Tensor2D, vocab?: TrainVocab): tf.Scalar {
  const p = model.params;
  if (p.lmHead) throw new Error('lmLoss: trains tied-unembedding GPT-2s only (this model has lm_head.weight)');
  return tf.tidy(() => {
    const [B, T] = tokensBT.shape;
    const D = model.config.n_embd;
    const hook = 'ln_final.hook_normalized';
    const h = gpt2Forward(model, tokensBT, { hooks: [hook], logits: false }).hooks[hook];
    const hND = tf.reshape(tf.slice(h, [0, 0, 0], [B, T - 1, D]), [B * (T - 1), D]) as tf.Tensor2D;
    const targets = tf.reshape(tf.slice(tokensBT, [0, 1], [B, T - 1]), [B * (T - 1)]) as tf.Tensor1D;
    if (vocab) {
      const s = subsetLogits(hND, p.wte, targets, vocab, matMul);
      return fusedCrossEntropy(s.logits, s.targets);
    }
    return fusedCrossEntropy(matMul(hND, tf.transpose(p.wte) as tf.Tensor2D), targets);
  });
}

export interface LmStepResult {
  /** Mean next-token CE of the batch before the update. */
  loss: number;
  /** Global gradient L2 norm before clipping. */
  gradNorm: number;
}

/**
 * One optimizer step on tokensBT [B, T] (int32): loss and gradients of every parameter, clip to
 * h.gradClip, Adam update with learning rate h.lr·lmLrScale(step). `step` is 0-based; the model's
 * variables and `opt`'s moments are updated in place (old moment tensors disposed).
 */
export async function lmTrainStep(model: Gpt2Model, tokensBT: tf.Tensor2D, opt: LmOptState, step: number, h: LmHyper, vocab?: TrainVocab): Promise<LmStepResult> {
  const vars = trainableVars(model);
  const lr = h.lr * lmLrScale(step, h);
  const { loss, norm } = tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => lmLoss(model, tokensBT, vocab), vars);
    const gs = vars.map((v) => grads[v.name]);
    const norm = tf.sqrt(tf.addN(gs.map((g) => tf.sum(tf.square(g)))));
    // Clip by global norm: scale = min(1, clip / norm).
    const scale = h.gradClip > 0 ? tf.minimum(1, tf.div(h.gradClip, tf.maximum(norm, 1e-12))) : tf.scalar(1);
    vars.forEach((v, i) => {
      const { p, m, v: s } = adamUpdate(v, tf.mul(gs[i], scale), opt.m[i], opt.v[i], step + 1, { lr, beta1: h.beta1, beta2: h.beta2, eps: h.eps });
      v.assign(p);
      tf.dispose([opt.m[i], opt.v[i]]);
      opt.m[i] = tf.keep(m);
      opt.v[i] = tf.keep(s);
    });
    return { loss: value, norm };
  });
  const [l, n] = await Promise.all([loss.data(), norm.data()]);
  tf.dispose([loss, norm]);
  return { loss: l[0], gradNorm: n[0] };
}

/**
 * The windows of optimizer step `step` (0-based): B window indices from a seeded shuffle of all `nWindows`
 * windows, a fresh permutation per epoch, so the batch order is a pure function of (seed, step) and a resumed
 * run sees exactly the batches an uninterrupted one would.
 */
export function batchWindows(step: number, batch: number, nWindows: number, seed: number): number[] {
  const out: number[] = [];
  for (let j = 0; j < batch; j++) {
    const i = step * batch + j;
    out.push(epochPermutation(Math.floor(i / nWindows), nWindows, seed)[i % nWindows]);
  }
  return out;
}

const permCache = new Map<string, Int32Array>();
function epochPermutation(epoch: number, n: number, seed: number): Int32Array {
  const key = `${seed}/${n}/${epoch}`;
  let p = permCache.get(key);
  if (!p) {
    const rng = seedrandom(`lm-windows-${seed}-epoch-${epoch}`);
    p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    if (permCache.size > 4) permCache.clear();
    permCache.set(key, p);
  }
  return p;
}
