import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import { gpt2Forward, type HookFn } from './gpt2.js';
import type { Gpt2Model } from './weights.js';

export interface GenerateOptions {
  maxNewTokens: number;
  /** 0 = greedy (argmax); otherwise sample from softmax(logits / temperature). Default 0. */
  temperature?: number;
  /** Seed of the sampler (temperature > 0). Default 0. */
  seed?: number;
  /** Hook replacements applied at every step (e.g. an SAE spliced in). */
  replace?: Readonly<Record<string, HookFn>>;
  /** Stop after producing this token (e.g. 50256). */
  stopToken?: number;
}

/** Index of a sample from softmax(logits / temperature), or the argmax when temperature is 0. */
export function pickToken(logits: Float32Array, temperature: number, rng: () => number): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  if (temperature <= 0) return best;
  const max = logits[best];
  let sum = 0;
  const p = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) sum += p[i] = Math.exp((logits[i] - max) / temperature);
  let u = rng() * sum;
  for (let i = 0; i < p.length; i++) if ((u -= p[i]) <= 0) return i;
  return best;
}

/**
 * Continues `prompt` (token ids) one token at a time with full forwards (no KV cache: prompts are short).
 * The context is the last n_positions tokens. Returns only the new tokens.
 */
export async function generate(model: Gpt2Model, prompt: readonly number[], opts: GenerateOptions): Promise<number[]> {
  const rng = seedrandom(`generate-${opts.seed ?? 0}`);
  const seq = [...prompt];
  const out: number[] = [];
  for (let i = 0; i < opts.maxNewTokens; i++) {
    const ctx = seq.slice(-model.config.n_positions);
    const last = tf.tidy(() => {
      const { logits } = gpt2Forward(model, [ctx], { replace: opts.replace });
      return tf.reshape(tf.slice(logits!, [0, ctx.length - 1, 0], [1, 1, -1]), [-1]);
    });
    // An async read: the webgpu backend cannot read synchronously in Node.
    const next = pickToken((await last.data().finally(() => last.dispose())) as Float32Array, opts.temperature ?? 0, rng);
    seq.push(next);
    out.push(next);
    if (next === opts.stopToken) break;
  }
  return out;
}
