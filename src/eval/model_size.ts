import * as tf from '@tensorflow/tfjs-core';
import { UserError } from '../io/errors.js';
import { gpt2Forward, tokenCrossEntropy } from '../model/gpt2.js';
import { loadGpt2, paramBytes } from '../model/load.js';
import { disposeParams } from '../model/weights.js';
import type { RunMetrics } from './types.js';

/**
 * Model-size equivalence: the spliced model's CE placed among reference models' clean CE on the same
 * tokens, as a parameter count interpolated linearly in log10(parameters) between the two references
 * (adjacent by size) whose CEs bracket it.
 */

export type ModelSizeEquivalence = NonNullable<RunMetrics['model_size_equivalence']>;
export interface ReferenceCe {
  model: string;
  params: number;
  ce: number;
}

/** Pure: where `ce` falls among references (sorted by parameters in the result). */
export function interpolateModelSize(ce: number, refs: readonly ReferenceCe[]): ModelSizeEquivalence {
  const sorted = [...refs].sort((a, b) => a.params - b.params);
  for (let i = 0; i + 1 < sorted.length; i++) {
    const a = sorted[i], b = sorted[i + 1];
    const lo = Math.min(a.ce, b.ce), hi = Math.max(a.ce, b.ce);
    if (ce < lo || ce > hi) continue;
    const t = a.ce === b.ce ? 0.5 : (a.ce - ce) / (a.ce - b.ce);
    const logP = Math.log10(a.params) + t * (Math.log10(b.params) - Math.log10(a.params));
    return { between: [a.model, b.model], equivalent_params: 10 ** logP, references: sorted };
  }
  return { between: null, equivalent_params: null, references: sorted };
}

/** Every parameter of a GPT-2 config (embeddings included). */
export function gpt2ParamCount(c: Parameters<typeof paramBytes>[0]): number {
  return paramBytes(c) / 4;
}

/**
 * A reference model's mean clean CE on the eval windows (loaded, evaluated, disposed).
 * `spec`: local folder or hub id, as for `model:`.
 */
export async function referenceCe(spec: string, windows: readonly Int32Array[], batchSize: number): Promise<ReferenceCe> {
  const m = await loadGpt2(spec);
  try {
    const T = windows[0].length;
    if (T > m.config.n_positions) throw new UserError(`eval.reference_models: ${spec} has n_positions ${m.config.n_positions}, less than eval.context_size ${T}.`);
    let maxId = 0;
    for (const w of windows) for (const t of w) maxId = Math.max(maxId, t);
    if (maxId >= m.config.vocab_size) throw new UserError(`eval.reference_models: ${spec} has a vocabulary of ${m.config.vocab_size}, but the eval tokens go up to ${maxId}: it does not share GPT-2's tokenizer.`);
    let sum = 0, n = 0;
    for (let b0 = 0; b0 < windows.length; b0 += batchSize) {
      const rows = windows.slice(b0, b0 + batchSize);
      const flat = new Int32Array(rows.length * T);
      rows.forEach((w, i) => flat.set(w, i * T));
      const s = tf.tidy(() => {
        const tok = tf.tensor2d(flat, [rows.length, T], 'int32');
        return tf.sum(tokenCrossEntropy(gpt2Forward(m, tok).logits!, tok));
      });
      sum += (await s.data())[0];
      s.dispose();
      n += rows.length * (T - 1);
    }
    return { model: spec, params: gpt2ParamCount(m.config), ce: sum / n };
  } finally {
    disposeParams(m.params);
  }
}
