import { join } from 'node:path';
import seedrandom from 'seedrandom';
import { writeRun } from './finetune-fixture.js';
import type { SaeWeights } from '../../src/sae/weights.js';

/**
 * SAEs built by hand whose effect is known exactly.
 * identitySae: d_sae = 2·d_in, W_enc = [I, −I], W_dec = [I; −I]·scale, biases 0, so
 * f = [ReLU(x), ReLU(−x)] and x̂ = scale·(ReLU(x) − ReLU(−x)) = scale·x.
 */
export function identitySae(dIn: number, decoderScale = 1): SaeWeights {
  const dSae = 2 * dIn;
  const W_enc = new Float32Array(dIn * dSae);
  const W_dec = new Float32Array(dSae * dIn);
  for (let i = 0; i < dIn; i++) {
    W_enc[i * dSae + i] = 1;
    W_enc[i * dSae + dIn + i] = -1;
    W_dec[i * dIn + i] = decoderScale;
    W_dec[(dIn + i) * dIn + i] = -decoderScale;
  }
  return { dIn, dSae, W_enc, b_enc: new Float32Array(dSae), W_dec, b_dec: new Float32Array(dIn) };
}

/** An identity encoder with a zero decoder and b_dec = 0: x̂ = 0 (zero ablation). */
export function zeroDecoderSae(dIn: number): SaeWeights {
  const w = identitySae(dIn);
  w.W_dec.fill(0);
  return w;
}

/** Random weights (seeded), with a negative encoder bias so that roughly `active` features fire. */
export function randomSae(dIn: number, dSae: number, seed: number, scale = 1): SaeWeights {
  const rng = seedrandom(`hand-sae-${seed}`);
  const u = () => rng() * 2 - 1;
  const W_enc = Float32Array.from({ length: dIn * dSae }, () => (u() * scale) / Math.sqrt(dIn));
  const W_dec = Float32Array.from({ length: dSae * dIn }, () => u() / Math.sqrt(dSae / 4));
  const b_enc = Float32Array.from({ length: dSae }, () => -0.1 * rng());
  const b_dec = Float32Array.from({ length: dIn }, () => 0.05 * u());
  return { dIn, dSae, W_enc, b_enc, W_dec, b_dec };
}

/** Random token windows [count][T] with ids below vocab, first token `bos`. */
export function randomWindows(count: number, T: number, vocab: number, seed: number, bos?: number): Int32Array[] {
  const rng = seedrandom(`windows-${seed}`);
  return Array.from({ length: count }, () => {
    const w = Int32Array.from({ length: T }, () => Math.floor(rng() * vocab));
    if (bos !== undefined) w[0] = bos;
    return w;
  });
}

/**
 * The eval tests' checkpoint set under `root` for a model of width d: an identity SAE and a random one at
 * blocks.1.hook_resid_pre, a random one at blocks.0.hook_resid_post, and a `scale` finetune of the first random one.
 */
export function writeEvalCheckpoints(root: string, d: number, finetuneSeed = 8): void {
  writeRun(join(root, 'pre1-id'), identitySae(d), 'blocks.1.hook_resid_pre', { d_sae: 2 * d, model_name: 'tiny', seed: 0 });
  writeRun(join(root, 'post0-rand'), randomSae(d, 48, 7), 'blocks.0.hook_resid_post', { d_sae: 48, model_name: 'tiny', seed: 0 });
  writeRun(join(root, 'pre1-rand'), randomSae(d, 48, 8), 'blocks.1.hook_resid_pre', { d_sae: 48, model_name: 'tiny', seed: 0 });
  writeRun(join(root, 'pre1-rand', 'finetuned-scale'), randomSae(d, 48, finetuneSeed), 'blocks.1.hook_resid_pre',
    { d_sae: 48, model_name: 'tiny', seed: 0, parent: join(root, 'pre1-rand'), finetune_method: 'scale' });
}
