import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ConsistencyFile } from '../src/consistency/consistency-types.js';
import type { RunMetrics } from '../src/eval/types.js';
import type { FinetuneReport } from '../src/finetune/table.js';
import { gaussianArray, makeRng } from '../src/io/rng.js';
import { loadCheckpoint } from '../src/sae/checkpoint.js';
import { useTestBackend } from './helpers/backend.js';
import { runMain } from './helpers/main-cli.js';
import { randomParams, writeSaelensV6, writeSparsify } from './helpers/foreign-saes.js';
import { writeCache } from './helpers/finetune-fixture.js';
import { tmpDir } from './helpers/tmp.js';
import { writeTinyModel } from './helpers/tiny-model.js';

/**
 * SAELens and sparsify folders in the stages: eval (splicing, top-k / drop-lowest with JumpReLU and TopK
 * encoders, a d_in that does not fit the hook), finetune with the encoder frozen (threshold and k included,
 * L0 identical) and consistency across SAEs from different tools.
 */

const D = 16, D_SAE = 40;
const HOOK = 'blocks.1.hook_resid_pre';
const root = tmpDir('sae-interop-stages-');
const modelDir = writeTinyModel(root, 'tiny', 0);
const corpus = join(root, 'text.txt');
const cache = join(root, 'cache');
const sl = (n: string) => join(root, 'saes', n);

const cli = runMain;

function recipe(name: string, body: string): string {
  const p = join(root, `${name}.yaml`);
  writeFileSync(p, `name: ${name}\nmodel: ${JSON.stringify(modelDir)}\nbackend: wasm\n${body}`);
  return p;
}
const json = <T>(p: string): T => JSON.parse(readFileSync(p, 'utf8')) as T;

beforeAll(async () => {
  await useTestBackend();
  writeFileSync(corpus, 'The river ran past the old mill and under the stone bridge, where children threw sticks into the water. '.repeat(12));
  const p = randomParams('stages', D, D_SAE);
  for (let i = 0; i < D_SAE; i++) p.b_enc[i] -= 0.3;
  writeSaelensV6(sl('jumprelu'), p, { architecture: 'jumprelu', hook_name: HOOK });
  writeSaelensV6(sl('topk'), randomParams('stages-topk', D, D_SAE), { architecture: 'topk', k: 4, hook_name: HOOK });
  writeSaelensV6(sl('layernorm'), p, { architecture: 'standard', normalize_activations: 'layer_norm', hook_name: HOOK });
  writeSparsify(sl('h.0'), randomParams('stages-sp', D, D_SAE), 3);
  writeSparsify(sl('resid'), randomParams('stages-sp2', D, D_SAE), 3);
  writeSaelensV6(sl('wide'), randomParams('wide', 2 * D, D_SAE), { architecture: 'standard', hook_name: HOOK });
  writeCache(cache, HOOK, gaussianArray(makeRng('cache'), 1200 * D, 1), D);
});

describe('imported SAEs in eval', () => {
  let res: { code: number; stderr: string };
  const out = join(root, 'eval');
  beforeAll(async () => {
    res = await cli(['eval', recipe('ev', `hook_names: { ${JSON.stringify(sl('resid'))}: ${HOOK} }\neval:\n  corpus: [${JSON.stringify(corpus)}]\n  context_size: 16\n  tokens: 64\n  batch_size: 2\n` +
      `  topk: [2]\n  drop_lowest: [1]\n  prompts: []\n  out: ${JSON.stringify(out)}\n  checkpoints: ${JSON.stringify(['jumprelu', 'topk', 'layernorm', 'h.0', 'resid', 'wide'].map(sl))}\n`)]);
  });

  it('splices every architecture in; top-k and drop-lowest ablations act on JumpReLU and TopK features', () => {
    for (const n of ['jumprelu', 'topk', 'layernorm', 'h.0', 'resid']) {
      const m = json<RunMetrics>(join(out, n, 'metrics.json'));
      expect(m.ce_spliced, n).toBeGreaterThan(0);
      expect(Number.isFinite(m.explained_variance), n).toBe(true);
      expect(m.l1_coefficient).toBeNull();
      expect(m.topk[0].l0, n).toBeLessThanOrEqual(2 + 1e-9);
      expect(m.drop_lowest[0].l0, n).toBeCloseTo(Math.max(0, m.l0 - 1), 6);
    }
    expect(json<RunMetrics>(join(out, 'topk', 'metrics.json')).l0).toBe(4);
    expect(json<RunMetrics>(join(out, 'h.0', 'metrics.json')).hook).toBe('blocks.0.hook_resid_post');
    expect(json<RunMetrics>(join(out, 'h.0', 'metrics.json')).l0).toBe(3);
    expect(json<RunMetrics>(join(out, 'resid', 'metrics.json')).hook).toBe(HOOK);
  });

  it('a d_in that does not fit the hook fails that SAE alone, naming it', () => {
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain('eval failed for 1 of 6');
    expect(res.stderr).toMatch(/wide: the SAE has d_in 32, but hook "blocks\.1\.hook_resid_pre" of model \S+ carries 16 floats per token/);
  });
});

describe('imported SAEs in finetune (encoder frozen: threshold and k included)', () => {
  it('keeps W_enc, b_enc, b_dec, the threshold and k bit for bit, and L0 on held-out tokens', async () => {
    const r = await cli(['finetune', recipe('ft', `finetune:\n  method: [scale, decoder]\n  cache: ${JSON.stringify(cache)}\n  tokens: 600\n  batch_size: 100\n  heldout_tokens: 300\n  checkpoints: ${JSON.stringify([sl('jumprelu'), sl('topk')])}\n`)]);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    for (const n of ['jumprelu', 'topk'])
      for (const m of ['scale', 'decoder']) {
        const parent = loadCheckpoint(sl(n)), child = loadCheckpoint(join(sl(n), `finetuned-${m}`));
        expect(child.cfg.architecture).toBe(n);
        expect(child.cfg.k).toBe(parent.cfg.k);
        expect(Array.from(child.weights.W_enc)).toEqual(Array.from(parent.weights.W_enc));
        expect(child.weights.encoder).toEqual(parent.weights.encoder);
        expect(Array.from(child.weights.W_dec)).not.toEqual(Array.from(parent.weights.W_dec));
        const rep = json<FinetuneReport>(join(sl(n), `finetuned-${m}`, 'finetune.json'));
        expect(rep.after.l0, `${n} ${m}`).toBe(rep.before.l0);
        expect(rep.after.mse, `${n} ${m}`).toBeLessThan(rep.before.mse as number);
      }
  });

  it('refuses SAEs that normalise each token at run time', async () => {
    const r = await cli(['finetune', recipe('ft-ln', `finetune:\n  method: scale\n  cache: ${JSON.stringify(cache)}\n  heldout_tokens: 300\n  checkpoints: [${JSON.stringify(sl('layernorm'))}]\n`)]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('normalize_activations is layer_norm');
  });
});

describe('consistency across SAEs from different tools', () => {
  it('pairs imported SAEs of the same hook and size', async () => {
    const out = join(root, 'cons');
    const r = await cli(['consistency', recipe('cons', `hook_names: { ${JSON.stringify(sl('resid'))}: ${HOOK} }\nconsistency:\n  out: ${JSON.stringify(out)}\n  checkpoints: ${JSON.stringify([sl('jumprelu'), sl('topk'), sl('resid')])}\n`)]);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const c = json<ConsistencyFile>(join(out, 'consistency.json'));
    expect(c.seed_pairs.map((p) => `${p.a}|${p.b}`).sort()).toEqual(['jumprelu|resid', 'jumprelu|topk', 'resid|topk']);
    for (const p of c.seed_pairs) expect(p.decoder.mmcs).toBeGreaterThan(0);
    expect(existsSync(join(out, 'consistency.md'))).toBe(true);
  });
});
