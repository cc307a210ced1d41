import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSafetensors } from '../src/io/safetensors.js';
import { gpt2Forward } from '../src/model/gpt2.js';
import { loadGpt2, type LoadedGpt2 } from '../src/model/load.js';
import { disposeParams } from '../src/model/weights.js';
import { useTestBackend } from './helpers/backend.js';

/** TransformerLens' fold_ln / center_writing_weights: invariances checked against the raw model's forward. */
const FIXTURE = 'test/fixtures/gpt2-tiny';
const ref = readSafetensors(`${FIXTURE}/reference.safetensors`).tensors;
const T = ref.tokens.shape[1];
const tokens = [0, 1].map((b) => Array.from(ref.tokens.data.subarray(b * T, (b + 1) * T)));
const RESID = ['blocks.0.hook_resid_pre', 'blocks.0.hook_resid_mid', 'blocks.1.hook_resid_post'];
const WRITES = ['blocks.0.hook_attn_out', 'blocks.1.hook_mlp_out', 'hook_embed'];
const HOOKS = [...RESID, ...WRITES, 'ln_final.hook_normalized'];

function run(m: LoadedGpt2): Record<string, Float32Array> {
  const r = gpt2Forward(m, tokens, { hooks: HOOKS });
  const out: Record<string, Float32Array> = { logits: r.logits!.dataSync() as Float32Array };
  for (const h of HOOKS) out[h] = r.hooks[h].dataSync() as Float32Array;
  tf.dispose([r.logits!, ...Object.values(r.hooks)]);
  disposeParams(m.params);
  return out;
}

function maxRel(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

/** Each row of [.., D] minus its mean; and standardised ((x − μ)/√(σ² + ε)). */
function rows(x: Float32Array, D: number, standardise: boolean): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / D; r++) {
    const row = x.subarray(r * D, (r + 1) * D);
    const mu = row.reduce((a, v) => a + v, 0) / D;
    const v = row.reduce((a, x) => a + (x - mu) ** 2, 0) / D;
    const s = standardise ? 1 / Math.sqrt(v + 1e-5) : 1;
    for (let j = 0; j < D; j++) out[r * D + j] = (row[j] - mu) * s;
  }
  return out;
}

let raw: Record<string, Float32Array>;
beforeAll(async () => {
  await useTestBackend();
  raw = run(await loadGpt2(FIXTURE));
});

describe('TransformerLens weight processing', () => {
  it('fold_ln leaves logits and the residual stream unchanged; ln_final.hook_normalized becomes the plain normalized stream', async () => {
    const m = await loadGpt2(FIXTURE, { foldLn: true });
    expect(m.processing).toBe('fold_ln');
    expect(m.params.lmHead).toBeDefined();
    const p = run(m);
    expect(maxRel(p.logits, raw.logits)).toBeLessThan(1e-5);
    for (const h of [...RESID, ...WRITES]) expect(maxRel(p[h], raw[h]), h).toBeLessThan(1e-5);
    expect(maxRel(p['ln_final.hook_normalized'], rows(raw['blocks.1.hook_resid_post'], 64, true))).toBeLessThan(1e-5);
    expect(maxRel(p['ln_final.hook_normalized'], raw['ln_final.hook_normalized'])).toBeGreaterThan(1e-2);
  });

  for (const foldLn of [false, true]) {
    it(`center_writing_weights${foldLn ? ' with fold_ln' : ''} leaves logits unchanged and centres every residual hook (x − mean(x))`, async () => {
      const m = await loadGpt2(FIXTURE, { foldLn, centerWritingWeights: true });
      expect(m.processing).toBe(foldLn ? 'fold_ln+center_writing_weights' : 'center_writing_weights');
      const p = run(m);
      expect(maxRel(p.logits, raw.logits)).toBeLessThan(1e-5);
      for (const h of [...RESID, ...WRITES]) {
        expect(maxRel(p[h], rows(raw[h], 64, false)), h).toBeLessThan(1e-5);
        expect(maxRel(p[h], raw[h]), h).toBeGreaterThan(1e-3); // it did change them
      }
    });
  }
});
