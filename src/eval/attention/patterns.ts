import * as tf from '@tensorflow/tfjs-core';
import { gpt2Forward, type HookFn } from '../../model/gpt2.js';
import type { Gpt2Model } from '../../model/weights.js';
import { decode, encode, type SaeTensors } from '../../sae/forward.js';
import { dropLowest, keepTopK } from '../ablate.js';

/**
 * Attention patterns at the prompts' query positions, clean and with SAEs spliced in (tfjs). Prompts of
 * different lengths share one forward, right-padded: causal attention never looks right of the query, so the
 * padding changes nothing at or before it. The forward reads only blocks.{l}.attn.hook_pattern and stops
 * after the last layer asked for (no MLP of that layer, no unembedding).
 */

/** What an SAE keeps of each token's features: all, the k largest (topk) or all but the k smallest (drop_lowest). */
export type Ablation = { mode: 'topk' | 'drop_lowest'; k: number } | null;

/** x ↦ decode(ablate(encode(x))) on the hook's value [B, T, …] flattened to [B·T, d_in]. */
export function ablatedSaeHook(p: SaeTensors, a: Ablation): HookFn {
  const dIn = p.W_enc.shape[0];
  return (x) => tf.tidy(() => {
    const f = encode(tf.reshape(x, [-1, dIn]) as tf.Tensor2D, p);
    const fk = a === null ? f : a.mode === 'topk' ? keepTopK(f, a.k) : dropLowest(f, a.k);
    return tf.reshape(decode(fk, p), x.shape);
  });
}

/** Prompts (token ids, BOS first) right-padded with `pad` to one [P, T] batch (T: the longest, or given). */
export function paddedBatch(prompts: readonly (readonly number[])[], pad: number, T = Math.max(...prompts.map((p) => p.length))): number[][] {
  return prompts.map((p) => [...p, ...Array<number>(T - p.length).fill(pad)]);
}

export const patternHook = (layer: number) => `blocks.${layer}.attn.hook_pattern`;

/**
 * Query rows of each layer's attention pattern: for every layer in `layers`, [P, H, T] (prompt p's row of
 * head h at its query position queries[p], over key positions 0..T−1), row-major.
 * Clean from the tokens, or spliced: `start` (a residual hook and its clean value [P, T, D]) and `replace`.
 * `keep`: hooks whose values the same forward returns as tensors (the caller disposes them).
 */
export async function queryRows(model: Gpt2Model, tokens: tf.Tensor2D | null, queries: readonly number[], layers: readonly number[],
  splice: { start?: { hook: string; value: tf.Tensor }; replace?: Record<string, HookFn>; keep?: readonly string[] } = {}): Promise<{ rows: Map<number, Float32Array>; kept: Record<string, tf.Tensor> }> {
  const names = layers.map(patternHook);
  const keep = splice.keep ?? [];
  const { rows, kept } = tf.tidy(() => {
    const out = gpt2Forward(model, splice.start ? null : tokens, { start: splice.start, replace: splice.replace, hooks: [...names, ...keep], logits: false });
    return {
      kept: Object.fromEntries(keep.map((h) => [h, out.hooks[h]])),
      rows: names.map((n) => {
        const [P, H, T] = out.hooks[n].shape as [number, number, number, number];
        const byQuery = tf.reshape(tf.transpose(out.hooks[n], [0, 2, 1, 3]), [P * T, H * T]); // row p·T + q: prompt p, query q
        return tf.gather(byQuery, tf.tensor1d(queries.map((q, p) => p * T + q), 'int32'));
      }),
    };
  });
  const data = await Promise.all(rows.map((r) => r.data()));
  tf.dispose(rows);
  return { rows: new Map(layers.map((l, i) => [l, data[i] as Float32Array])), kept };
}
