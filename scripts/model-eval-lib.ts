/**
 * What scripts/eval-model.ts measures, shared with test/embedded-model.test.ts: the test slice, CE over
 * windows with the model's own loss (src/model/gpt2.ts meanCrossEntropy), and the unigram baseline.
 */
import * as tf from '@tensorflow/tfjs-core';
import { readWindows } from '../src/model/corpus.js';
import { gpt2Forward, meanCrossEntropy } from '../src/model/gpt2.js';
import { gpt2Tokenizer, GPT2_VOCAB_SIZE } from '../src/model/tokenizer.js';
import type { Gpt2Model } from '../src/model/weights.js';
import type { SplitWindows } from './sotu-windows.js';
import { activationSpectrum, type SpectrumSummary } from '../src/activations/spectrum.js';

/** The test slice (test/embedded-model.test.ts reads the same constants from here). */
export const TEST_SLICE_FILE = 'data/quickstart/heldout.txt';
export const TEST_SLICE_WINDOWS = 16;

/** The test slice's windows: the first TEST_SLICE_WINDOWS of TEST_SLICE_FILE, cut as harvest/eval cut them. */
export function testSliceWindows(contextSize: number): Int32Array[] {
  return readWindows([TEST_SLICE_FILE], gpt2Tokenizer(), { contextSize, prependBos: true }, TEST_SLICE_WINDOWS).windows;
}

/** Mean next-token CE over all predicted positions of equal-length windows, in batches; no gradients. */
export async function windowsCe(model: Gpt2Model, windows: readonly Int32Array[], batch = 8, onBatch?: (done: number) => void): Promise<number> {
  let sum = 0;
  for (let i = 0; i < windows.length; i += batch) {
    const part = windows.slice(i, i + batch);
    const T = part[0].length;
    const data = new Int32Array(part.length * T);
    part.forEach((w, k) => data.set(w, k * T));
    const ce = tf.tidy(() => {
      const tok = tf.tensor2d(data, [part.length, T], 'int32');
      return meanCrossEntropy(gpt2Forward(model, tok).logits!, tok);
    });
    sum += (await ce.data())[0] * part.length;
    ce.dispose();
    onBatch?.(i + part.length);
  }
  return sum / windows.length;
}

/** CE of a unigram model fit on the training windows' targets (add-one smoothing), on the held-out windows' targets. */
export function unigramCe(train: SplitWindows, heldout: SplitWindows): number {
  const counts = new Float64Array(GPT2_VOCAB_SIZE).fill(1);
  let total = GPT2_VOCAB_SIZE;
  for (let w = 0; w < train.n; w++) for (let t = 1; t < train.context; t++) counts[train.tokens[w * train.context + t]]++, total++;
  let nll = 0, n = 0;
  for (let w = 0; w < heldout.n; w++) for (let t = 1; t < heldout.context; t++) nll -= Math.log(counts[heldout.tokens[w * heldout.context + t]] / total), n++;
  return nll / n;
}

export function rows(s: SplitWindows): Int32Array[] {
  return Array.from({ length: s.n }, (_, w) => s.tokens.subarray(w * s.context, (w + 1) * s.context));
}


/** The residual-stream hooks whose spectrum the model card shows: every block's input (the quickstart's hooks among them). */
export function residualHooks(nLayer: number): string[] {
  return Array.from({ length: nLayer }, (_, l) => `blocks.${l}.hook_resid_pre`);
}

/**
 * Activation spectrum (src/activations/spectrum.ts) of each residual hook over every position of the windows:
 * the number that says whether SAE features there are well determined (top five components well under 90%).
 */
export async function residualSpectra(model: Gpt2Model, windows: readonly Int32Array[]): Promise<Record<string, SpectrumSummary>> {
  const hooks = residualHooks(model.config.n_layer);
  const T = windows[0].length, D = model.config.n_embd;
  const data = new Int32Array(windows.length * T);
  windows.forEach((w, k) => data.set(w, k * T));
  const tok = tf.tensor2d(data, [windows.length, T], 'int32');
  const r = gpt2Forward(model, tok, { hooks, logits: false });
  tok.dispose();
  const out: Record<string, SpectrumSummary> = {};
  for (const h of hooks) out[h] = activationSpectrum((await r.hooks[h].data()) as Float32Array, windows.length * T, D);
  tf.dispose(Object.values(r.hooks));
  return out;
}
