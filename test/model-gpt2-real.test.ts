import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { gpt2Forward, meanCrossEntropy } from '../src/model/gpt2.js';
import { generate } from '../src/model/generate.js';
import { loadGpt2 } from '../src/model/load.js';
import { disposeParams } from '../src/model/weights.js';
import { useTestBackend } from './helpers/backend.js';

/**
 * Published figures for real GPT-2 small; runs only when SAE_TRAIN_GPT2_DIR points at a folder with gpt2's
 * config.json and model.safetensors (https://huggingface.co/gpt2).
 */
const dir = process.env.SAE_TRAIN_GPT2_DIR;
if (!dir) console.warn('skipping real GPT-2 checks: set SAE_TRAIN_GPT2_DIR to a folder with gpt2\'s config.json and model.safetensors to run them');

describe.skipIf(!dir)('real GPT-2 small (SAE_TRAIN_GPT2_DIR)', () => {
  it('loss on "Hello world!" with BOS is 5.3319 (TransformerLens acceptance test) and greedy "The dog" continues as in Hugging Face\'s test', async () => {
    await useTestBackend();
    const model = await loadGpt2(dir!);
    const tokens = [[50256, 15496, 995, 0]];
    const loss = tf.tidy(() => meanCrossEntropy(gpt2Forward(model, tokens).logits!, tokens).dataSync()[0]);
    expect(loss).toBeCloseTo(5.3319, 3);
    const out = await generate(model, [464, 3290], { maxNewTokens: 14 });
    expect(out).toEqual([373, 1043, 287, 257, 2214, 1474, 262, 16246, 286, 2688, 290, 2688, 27262, 13]);
    disposeParams(model.params);
  });
});
