import * as tf from '@tensorflow/tfjs-core';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { gaussianArray, makeRng } from '../src/io/rng.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { isCheckpoint, loadCheckpoint } from '../src/sae/checkpoint.js';
import { decode, disposeTensors, encode, reconstruct, toTensors } from '../src/sae/forward.js';
import { cloneWeights } from '../src/sae/weights.js';
import { checkFrozenEncoder } from '../src/finetune/table.js';
import { useTestBackend } from './helpers/backend.js';
import { randomParams, writeSaelensV5, writeSaelensV6, writeSparsify, type Params } from './helpers/foreign-saes.js';
import { tmpDir } from './helpers/tmp.js';

/**
 * SAELens (5.x flat cfg, 6.x architecture + metadata) and sparsify folders, written as those tools write them,
 * load into sae-train's SAE, and its encode/decode agree with an independent numpy reimplementation of each
 * tool's forward pass (test/interop_reference.py) to 1e-5.
 */

const D_IN = 16, D_SAE = 48, N = 64;
const HOOK = 'blocks.1.hook_resid_pre';
const dir = tmpDir('sae-interop-');

interface Case {
  name: string;
  write: (d: string, p: Params) => void;
  /** topk: every token keeps exactly k features */
  k?: number;
}

const CASES: Case[] = [
  { name: 'v6-standard', write: (d, p) => writeSaelensV6(d, p, { architecture: 'standard', hook_name: HOOK }) },
  { name: 'v6-standard-no-bdec', write: (d, p) => writeSaelensV6(d, p, { architecture: 'standard', apply_b_dec_to_input: false, hook_name: HOOK }) },
  { name: 'v6-jumprelu', write: (d, p) => writeSaelensV6(d, p, { architecture: 'jumprelu', hook_name: HOOK }) },
  { name: 'v6-topk', k: 5, write: (d, p) => writeSaelensV6(d, p, { architecture: 'topk', k: 5, hook_name: HOOK }) },
  { name: 'v6-topk-rescaled', k: 6, write: (d, p) => writeSaelensV6(d, p, { architecture: 'topk', k: 6, rescale_acts_by_decoder_norm: true, hook_name: HOOK }) },
  { name: 'v6-constant-norm', write: (d, p) => writeSaelensV6(d, p, { architecture: 'standard', normalize_activations: 'constant_norm_rescale', hook_name: HOOK }) },
  { name: 'v6-jumprelu-layer-norm', write: (d, p) => writeSaelensV6(d, p, { architecture: 'jumprelu', normalize_activations: 'layer_norm', hook_name: HOOK }) },
  { name: 'v6-expected-average', write: (d, p) => writeSaelensV6(d, p, { architecture: 'standard', normalize_activations: 'expected_average_only_in', scaling_factor: 0.37, hook_name: HOOK }) },
  { name: 'v5-standard-scaled', write: (d, p) => writeSaelensV5(d, p, { architecture: 'standard', activation_fn_str: 'relu', apply_b_dec_to_input: false, finetuning_scaling_factor: true, normalize_activations: 'none', hook_name: HOOK }) },
  { name: 'v5-topk', k: 4, write: (d, p) => writeSaelensV5(d, p, { architecture: 'standard', activation_fn_str: 'topk', k: 4, apply_b_dec_to_input: true, finetuning_scaling_factor: false, normalize_activations: false, hook_name: HOOK }) },
  { name: 'v5-jumprelu', write: (d, p) => writeSaelensV5(d, p, { architecture: 'jumprelu', activation_fn_str: 'relu', apply_b_dec_to_input: true, finetuning_scaling_factor: false, normalize_activations: 'none', hook_name: HOOK }) },
  { name: 'sparsify', k: 7, write: (d, p) => writeSparsify(d, p, 7) },
];

beforeAll(async () => {
  await useTestBackend();
});

function inputs(): Float32Array {
  const r = makeRng('x');
  const x = gaussianArray(r, N * D_IN, 1.5);
  for (let i = 0; i < N; i++) x[i * D_IN] += 3; // an offset, so that layer_norm's mean and b_dec matter
  return x;
}

describe('SAELens and sparsify folders → sae-train', () => {
  it('encode and decode as each tool does (numpy reference, 1e-5)', () => {
    const x = inputs();
    const jobs: { name: string; folder: string; ours: string }[] = [];
    for (const c of CASES) {
      const folder = join(dir, c.name === 'sparsify' ? 'h.1' : c.name);
      c.write(folder, randomParams(c.name, D_IN, D_SAE));
      expect(isCheckpoint(folder)).toBe(true);
      const { cfg, weights } = loadCheckpoint(folder);
      expect(cfg.hook_name).toBe(c.name === 'sparsify' ? 'blocks.1.hook_resid_post' : HOOK);
      expect([cfg.d_in, cfg.d_sae]).toEqual([D_IN, D_SAE]);
      const before = tf.memory().numTensors;
      const p = toTensors(weights);
      const xt = tf.tensor2d(x, [N, D_IN]);
      const f = encode(xt, p);
      const xhat = decode(f, p, xt);
      const rec = reconstruct(xt, p);
      const [fa, xa, ra] = [f.dataSync() as Float32Array, xhat.dataSync() as Float32Array, rec.dataSync() as Float32Array];
      expect(Array.from(ra)).toEqual(Array.from(xa));
      tf.dispose([xt, f, xhat, rec]);
      disposeTensors(p);
      expect(tf.memory().numTensors).toBe(before);
      if (c.k) for (let i = 0; i < N; i++) expect(fa.subarray(i * D_SAE, (i + 1) * D_SAE).filter((v) => v > 0).length).toBe(c.k);
      const ours = join(dir, 'ours', `${c.name}.safetensors`);
      mkdirSync(join(dir, 'ours'), { recursive: true });
      writeSafetensors(ours, { x: { shape: [N, D_IN], data: x }, f: { shape: [N, D_SAE], data: fa }, xhat: { shape: [N, D_IN], data: xa } });
      jobs.push({ name: c.name, folder, ours });
    }
    const casesPath = join(dir, 'cases.json');
    writeFileSync(casesPath, JSON.stringify(jobs));
    const out = execFileSync('python3', ['test/interop_reference.py', casesPath], { encoding: 'utf8' });
    const rows = out.trim().split('\n').map((l) => JSON.parse(l) as { name: string; f_err: number; xhat_err: number; scale: number; l0: number });
    expect(rows.map((r) => r.name)).toEqual(CASES.map((c) => c.name));
    for (const r of rows) {
      expect(r.l0, r.name).toBeGreaterThan(0.5);
      expect(r.f_err, `${r.name} f`).toBeLessThan(1e-5);
      expect(r.xhat_err, `${r.name} xhat`).toBeLessThan(1e-5);
    }
  });

  it('keeps JumpReLU thresholds and TopK k as part of the encoder', () => {
    const jr = join(dir, 'keep-jr'), tk = join(dir, 'keep-tk');
    const p = randomParams('keep', D_IN, D_SAE);
    writeSaelensV6(jr, p, { architecture: 'jumprelu', hook_name: HOOK });
    writeSaelensV6(tk, p, { architecture: 'topk', k: 3, hook_name: HOOK });
    const a = loadCheckpoint(jr).weights.encoder!, b = loadCheckpoint(tk).weights.encoder!;
    expect(a.architecture).toBe('jumprelu');
    expect(Array.from(a.threshold!)).toEqual(Array.from(p.threshold));
    expect([b.architecture, b.k]).toEqual(['topk', 3]);
    // the finetune's frozen-encoder check covers them
    const parent = loadCheckpoint(jr).weights, fired = new Float64Array(D_SAE);
    expect(() => checkFrozenEncoder(parent, cloneWeights(parent), fired, fired, 1, 1)).not.toThrow();
    const moved = cloneWeights(parent);
    moved.encoder!.threshold![7] += 1e-3;
    expect(() => checkFrozenEncoder(parent, moved, fired, fired, 1, 1)).toThrow(/encoder's threshold differs/);
    const tkw = loadCheckpoint(tk).weights, otherK = cloneWeights(tkw);
    otherK.encoder!.k = 4;
    expect(() => checkFrozenEncoder(tkw, otherK, fired, fired, 1, 1)).toThrow(/encoder's k 3 → 4 differs/);
  });
});

describe('refusals name the file and the fix', () => {
  const err = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return (e as Error).message;
    }
    return 'no error';
  };

  it('pickle files are never unpickled; the conversion is spelled out', () => {
    const d = join(dir, 'dl');
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'ae.pt'), 'not really a pickle');
    writeFileSync(join(d, 'config.json'), '{}');
    const m = err(() => isCheckpoint(d));
    expect(m).toContain(join(d, 'ae.pt'));
    expect(m).toContain('never unpickles');
    expect(m).toContain('sd["decoder.weight"].T');
    expect(m).toContain('sae_weights.safetensors');
  });

  it('unknown architectures, unsupported activations and inconsistent folders', () => {
    const p = randomParams('bad', D_IN, D_SAE);
    const gated = join(dir, 'gated');
    writeSaelensV6(gated, p, { architecture: 'standard', hook_name: HOOK });
    const cfg = JSON.parse(readFileSync(join(gated, 'cfg.json'), 'utf8'));
    writeFileSync(join(gated, 'cfg.json'), JSON.stringify({ ...cfg, architecture: 'gated' }));
    expect(err(() => loadCheckpoint(gated))).toMatch(/architecture "gated" is not supported.*standard, jumprelu, topk/);

    const tanh = join(dir, 'tanh');
    writeSaelensV5(tanh, p, { architecture: 'standard', activation_fn_str: 'relu', apply_b_dec_to_input: true, finetuning_scaling_factor: false, normalize_activations: 'none', hook_name: HOOK });
    const c5 = JSON.parse(readFileSync(join(tanh, 'cfg.json'), 'utf8'));
    writeFileSync(join(tanh, 'cfg.json'), JSON.stringify({ ...c5, activation_fn_str: 'tanh-relu' }));
    expect(err(() => loadCheckpoint(tanh))).toContain('activation_fn "tanh-relu" is not supported');

    const noScaler = join(dir, 'no-scaler');
    writeSaelensV6(noScaler, p, { architecture: 'standard', normalize_activations: 'expected_average_only_in', hook_name: HOOK });
    expect(err(() => loadCheckpoint(noScaler))).toMatch(/no scaling factor.*activation_scaler\.json.*norm_scaling_factor/s);

    const scaled = join(dir, 'scaled-no-flag');
    writeSaelensV5(scaled, p, { architecture: 'standard', activation_fn_str: 'relu', apply_b_dec_to_input: true, finetuning_scaling_factor: true, normalize_activations: 'none', hook_name: HOOK });
    writeFileSync(join(scaled, 'cfg.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(scaled, 'cfg.json'), 'utf8')), finetuning_scaling_factor: false }));
    expect(err(() => loadCheckpoint(scaled))).toContain('finetuning_scaling_factor is not true');

    const badNorm = join(dir, 'bad-norm');
    writeSaelensV6(badNorm, p, { architecture: 'standard', hook_name: HOOK });
    writeFileSync(join(badNorm, 'cfg.json'), JSON.stringify({ ...cfg, normalize_activations: 'expected_norm' }));
    expect(err(() => loadCheckpoint(badNorm))).toContain('normalize_activations "expected_norm" is not one of SAELens');

    const shapes = join(dir, 'shapes');
    writeSaelensV6(shapes, p, { architecture: 'standard', hook_name: HOOK });
    writeFileSync(join(shapes, 'cfg.json'), JSON.stringify({ ...cfg, d_sae: D_SAE + 1 }));
    expect(err(() => loadCheckpoint(shapes))).toMatch(/tensor "W_enc" has shape \[16,48\], but cfg\.json \(d_in 16, d_sae 49/);
  });

  it('a sparsify folder whose hookpoint is no GPT-2 block asks for hook_names, which it then takes', () => {
    const d = join(dir, 'embed_out');
    writeSparsify(d, randomParams('s', D_IN, D_SAE), 3);
    expect(err(() => loadCheckpoint(d))).toContain(`hook_names: { "${d}": blocks.6.hook_resid_post }`);
    expect(loadCheckpoint(d, { hookName: 'blocks.0.hook_resid_pre' }).cfg.hook_name).toBe('blocks.0.hook_resid_pre');
    const tc = join(dir, 'h.3');
    writeSparsify(tc, randomParams('s', D_IN, D_SAE), 3);
    writeFileSync(join(tc, 'cfg.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(tc, 'cfg.json'), 'utf8')), transcode: true }));
    expect(err(() => loadCheckpoint(tc))).toContain('transcoder');
  });
});
