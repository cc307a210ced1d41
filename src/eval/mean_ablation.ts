import * as tf from '@tensorflow/tfjs-core';
import { gpt2Forward, type ForwardResult, type HookFn } from '../model/gpt2.js';
import type { Gpt2Model } from '../model/weights.js';
import { batchTokens, sumOf } from './batches.js';
import type { EngineOptions, HookAcc } from './engine-types.js';
import { batchTargets, tokenCe, type Targets } from './logprobs.js';
import { broadcastToHook } from './reductions.js';
import { startHookFor } from './splice_points.js';

/**
 * ce_mean_ablation: the second eval pass, once each hook's mean over all eval tokens is known. A residual
 * hook starts the forward at the hook itself from its mean (no clean prefix needed); other hooks start at
 * the residual below them, which one clean prefix forward (logits off) provides for all of them.
 */
/** CE with each hook replaced by its mean over the eval tokens. */
export async function meanAblationPass(model: Gpt2Model, windows: readonly Int32Array[], hooks: Map<string, HookAcc>, B: number, opts: Pick<EngineOptions, 'onProgress'>): Promise<void> {
  const c = model.config;
  const W = windows.length, T = windows[0].length;
  const list = [...hooks.values()];
  for (const h of list) h.ceMeanSum = 0;
  // Non-residual hooks start from a clean residual below them: one prefix forward serves them all.
  const prefixReads = [...new Set(list.map((h) => startHookFor(c, h.hook)).filter((s, i): s is string => s !== null && s !== list[i].hook))];
  const means = new Map(list.map((h) => [h.hook, tf.tensor1d(Float32Array.from(h.mean))]));
  try {
    for (let b0 = 0; b0 < W; b0 += B) {
      const b1 = Math.min(W, b0 + B);
      const tok = batchTokens(windows, b0, b1, T);
      const targets: Targets = batchTargets(tok, c.vocab_size);
      const prefix = prefixReads.length ? gpt2Forward(model, tok, { hooks: prefixReads, logits: false }) : { hooks: {} as Record<string, tf.Tensor> };
      try {
        for (const h of list) {
          const mu = means.get(h.hook)!;
          const start = startHookFor(c, h.hook);
          const replace: Record<string, HookFn> = { [h.hook]: (x) => broadcastToHook(mu, x.shape) };
          let out: ForwardResult;
          if (start === h.hook) {
            const value = broadcastToHook(mu, [b1 - b0, T, c.n_embd]);
            out = gpt2Forward(model, null, { start: { hook: start, value } });
            value.dispose();
          } else out = gpt2Forward(model, start ? null : tok, { start: start ? { hook: start, value: prefix.hooks[start] } : undefined, replace });
          const ce = tokenCe(out.logits!, targets);
          out.logits!.dispose();
          h.ceMeanSum += await sumOf(tf.sum(ce));
          ce.dispose();
        }
      } finally {
        tf.dispose([tok, targets.targetIdxN, ...Object.values(prefix.hooks)]);
      }
      opts.onProgress?.('mean-ablation', b1, W);
    }
  } finally {
    tf.dispose([...means.values()]);
  }
}
