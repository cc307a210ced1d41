import * as tf from '@tensorflow/tfjs-core';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../src/io/errors.js';
import { readSafetensors, writeSafetensors, type TensorToWrite } from '../src/io/safetensors.js';
import { parseGpt2Config, readGpt2Config } from '../src/model/config.js';
import { gpt2Forward } from '../src/model/gpt2.js';
import { loadGpt2, readGpt2Folder, writeGpt2Folder } from '../src/model/load.js';
import { disposeParams } from '../src/model/weights.js';
import { useTestBackend } from './helpers/backend.js';
import { tmpDir } from './helpers/tmp.js';

const FIXTURE = 'test/fixtures/gpt2-tiny';
const TOKENS = [[511, 3, 77, 400, 12]];

beforeAll(useTestBackend);

/** A copy of the fixture whose safetensors holds `tensors` (and the fixture's config.json unless given). */
function variant(dir: string, name: string, tensors: Record<string, TensorToWrite>, config?: unknown): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  if (config) writeFileSync(join(d, 'config.json'), JSON.stringify(config));
  else copyFileSync(join(FIXTURE, 'config.json'), join(d, 'config.json'));
  writeSafetensors(join(d, 'model.safetensors'), tensors);
  return d;
}

async function logitsOf(dir: string): Promise<Float32Array> {
  const m = await loadGpt2(dir);
  const r = gpt2Forward(m, TOKENS);
  const out = r.logits!.dataSync() as Float32Array;
  r.logits!.dispose();
  disposeParams(m.params);
  return out;
}

describe('loading a Hugging Face GPT-2 folder', () => {
  const dir = tmpDir();
  const fixture = readSafetensors(join(FIXTURE, 'model.safetensors')).tensors;

  it('accepts names with the transformer. prefix and a tied lm_head, ignoring mask buffers', async () => {
    const prefixed: Record<string, TensorToWrite> = {};
    for (const [k, v] of Object.entries(fixture)) prefixed[`transformer.${k}`] = v;
    prefixed['lm_head.weight'] = fixture['wte.weight'];
    prefixed['transformer.h.0.attn.masked_bias'] = { shape: [], data: Float32Array.of(-1e4) };
    const d = variant(dir, 'prefixed', prefixed);
    const { weights } = readGpt2Folder(d);
    expect(weights['lm_head.weight']).toBeUndefined(); // equal to wte: tied
    expect(weights['h.0.attn.bias']).toBeUndefined();
    expect(Array.from(await logitsOf(d))).toEqual(Array.from(await logitsOf(FIXTURE)));
  });

  it('uses an untied lm_head', async () => {
    const t = { ...fixture, 'lm_head.weight': { shape: fixture['wte.weight'].shape, data: fixture['wte.weight'].data.map((v) => 2 * v) } };
    const d = variant(dir, 'untied', t);
    const [a, b] = [await logitsOf(d), await logitsOf(FIXTURE)];
    for (let i = 0; i < a.length; i += 97) expect(a[i]).toBeCloseTo(2 * b[i], 4);
  });

  it('lists every missing, unexpected and misshaped tensor in one error', () => {
    const t: Record<string, TensorToWrite> = { ...fixture };
    delete t['h.1.mlp.c_fc.bias'];
    t['h.0.ln_1.weight'] = { shape: [63], data: new Float32Array(63) };
    t['h.0.attn.q_proj.weight'] = { shape: [2], data: new Float32Array(2) };
    const d = variant(dir, 'broken', t);
    let msg = '';
    try {
      readGpt2Folder(d);
    } catch (e) {
      expect(e).toBeInstanceOf(UserError);
      msg = (e as Error).message;
    }
    expect(msg).toContain('model.safetensors');
    expect(msg).toContain('missing tensor "h.1.mlp.c_fc.bias"');
    expect(msg).toContain('"h.0.ln_1.weight" has shape [63], config.json implies [64]');
    expect(msg).toContain('unexpected tensor "h.0.attn.q_proj.weight"');
    expect(msg).not.toContain('missing tensor "h.0.ln_1.weight"');
  });

  it('reports weights that do not fit config.json (wrong n_embd)', () => {
    const cfg = { ...JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')), n_embd: 32 };
    const d = variant(dir, 'wrong-config', fixture, cfg);
    expect(() => readGpt2Folder(d)).toThrow(/does not match config\.json \(2 layers, n_embd 32.*"wte\.weight" has shape \[512,64\], config\.json implies \[512,32\]/);
  });

  it('rejects a truncated safetensors file naming it', () => {
    const d = variant(dir, 'truncated', fixture);
    const p = join(d, 'model.safetensors');
    const bytes = readFileSync(p);
    writeFileSync(p, bytes.subarray(0, bytes.length - 100));
    expect(() => readGpt2Folder(d)).toThrow(/truncated[\\/]model\.safetensors: not a valid safetensors file/);
  });

  it('refuses pickle weights and says how to get safetensors, without reading them', () => {
    const d = join(dir, 'pickle');
    mkdirSync(d);
    copyFileSync(join(FIXTURE, 'config.json'), join(d, 'config.json'));
    writeFileSync(join(d, 'pytorch_model.bin'), 'not read: a pickle could run code');
    expect(() => readGpt2Folder(d)).toThrow(/pytorch_model\.bin but no model\.safetensors.*never unpickles.*save_pretrained\(.*safe_serialization=True\)/);
  });

  it('explains missing or malformed config.json', () => {
    const d = join(dir, 'noconfig');
    mkdirSync(d);
    expect(() => readGpt2Config(d)).toThrow(/config\.json: not found.*model\.safetensors/);
    writeFileSync(join(d, 'config.json'), '{ "n_layer": 2, ');
    expect(() => readGpt2Config(d)).toThrow(/config\.json: not valid JSON/);
    expect(() => parseGpt2Config({ n_layer: 2, n_head: 3, n_embd: 64, n_positions: 64, vocab_size: 10 }, 'c.json')).toThrow(/c\.json: "n_embd" \(64\) must be divisible by "n_head" \(3\)/);
    expect(() => parseGpt2Config({ n_head: 4, n_embd: 64, n_positions: 64, vocab_size: 10 }, 'c.json')).toThrow(/"n_layer" must be a positive integer \(got nothing\)/);
    expect(() => parseGpt2Config({ n_layer: 1, n_head: 4, n_embd: 64, n_positions: 64, vocab_size: 10, activation_function: 'relu' }, 'c.json')).toThrow(/activation_function/);
    expect(() => parseGpt2Config({ model_type: 'llama' }, 'c.json')).toThrow(/GPT-2 family/);
    expect(() => readGpt2Folder(join(dir, 'nowhere'))).toThrow(/model folder not found/);
  });

  it('writes a folder that reads back identically', () => {
    const { config, weights } = readGpt2Folder(FIXTURE);
    const d = join(dir, 'written');
    writeGpt2Folder(d, config, weights);
    const back = readGpt2Folder(d);
    expect(back.config).toEqual(config);
    expect(Object.keys(back.weights).sort()).toEqual(Object.keys(weights).sort());
    expect(Array.from(back.weights['h.1.mlp.c_proj.weight'].data)).toEqual(Array.from(weights['h.1.mlp.c_proj.weight'].data));
    expect(tf.memory().numTensors).toBe(0);
  });
});
