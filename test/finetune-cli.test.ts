import { beforeAll, describe, expect, it, vi } from 'vitest';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import seedrandom from 'seedrandom';
import { main } from '../src/cli/main.js';
import { loadCheckpoint } from '../src/sae/checkpoint.js';
import { checkFrozenEncoder, type FinetuneReport } from '../src/finetune/table.js';
import { tmpDir } from './helpers/tmp.js';
import { makeFixture, fixtureSae, writeCache, writeRun } from './helpers/finetune-fixture.js';

const dir = tmpDir();
const HOOK = 'synthetic';
const cache = join(dir, 'cache');
const run = join(dir, 'ck', 'run0');

/** Runs the CLI, returning its exit code and what it wrote to stderr. */
async function cli(...argv: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
    err += String(s);
    return true;
  });
  try {
    return { code: await main(argv), err };
  } finally {
    spy.mockRestore();
  }
}

function recipe(name: string, finetune: string): string {
  const p = join(dir, `${name}.yaml`);
  writeFileSync(p, `name: ${name}\nbackend: wasm\nfinetune:\n${finetune}`);
  return p;
}

const report = (m: string): FinetuneReport => JSON.parse(readFileSync(join(run, `finetuned-${m}`, 'finetune.json'), 'utf8'));
const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

beforeAll(() => {
  const fx = makeFixture({ n: 24, d: 32, T: 3000, noise: 0.05, seed: 7 });
  writeCache(cache, HOOK, fx.x, fx.d, 700);
  const rng = seedrandom('cli');
  writeRun(run, fixtureSae(fx, Array.from({ length: fx.n }, () => 0.3 + 0.5 * rng())), HOOK);
});

const base = `  cache: ${cache}\n  checkpoints: [${run}]\n  tokens: 2000\n  heldout_tokens: 600\n  batch_size: 256\n`;

describe('sae-train finetune (scale, feature_scale)', () => {
  it('writes finetuned-<method>/ checkpoints with a frozen encoder, unchanged L0 and a before/after table', async () => {
    const r = recipe('a', `  method: [scale, feature_scale]\n${base}`);
    const { code, err } = await cli('finetune', r);
    expect(err).toBe('');
    expect(code).toBe(0);
    const parent = loadCheckpoint(run);
    for (const m of ['scale', 'feature_scale']) {
      const { cfg, weights } = loadCheckpoint(join(run, `finetuned-${m}`));
      expect(cfg.parent).toBe(run);
      expect(cfg.finetune_method).toBe(m);
      expect(cfg.run_name).toBe(`run0__finetuned-${m}`);
      for (const k of ['W_enc', 'b_enc', 'b_dec'] as const) expect(bytes(weights[k]).equals(bytes(parent.weights[k]))).toBe(true);
      const rep = report(m);
      expect(rep.after.l0).toBe(rep.before.l0);
      expect(rep.heldout.rows).toEqual([2400, 3000]);
      expect(rep.fit.rows).toEqual([0, 2000]);
      expect(rep.before.l2_ratio!).toBeLessThan(0.85);
      expect(rep.after.mse!).toBeLessThan(rep.before.mse!);
      expect(rep.after.ce_spliced).toBeNull(); // no eval has run: never made up
      expect(readFileSync(join(run, `finetuned-${m}`, 'finetune.md'), 'utf8')).toMatch(/\| l0 \| .* \| 0\.0000 \|/);
    }
    // One scalar cannot undo per-feature shrinkage; one scale per feature can.
    expect(Math.abs(report('feature_scale').after.l2_ratio! - 1)).toBeLessThan(0.03);
    expect(report('feature_scale').after.explained_variance!).toBeGreaterThan(report('scale').after.explained_variance!);
  });

  it('reuses a finished finetune, redoes it with --fresh, refuses changed settings without --overwrite', async () => {
    const r = recipe('a', `  method: [scale, feature_scale]\n${base}`);
    const w = join(run, 'finetuned-scale', 'sae_weights.safetensors');
    const t0 = statSync(w).mtimeMs;
    expect((await cli('finetune', r)).code).toBe(0);
    expect(statSync(w).mtimeMs).toBe(t0);
    expect((await cli('finetune', r, '--fresh')).code).toBe(0);
    expect(statSync(w).mtimeMs).toBeGreaterThan(t0);
    const changed = recipe('b', `  method: scale\n${base.replace('tokens: 2000', 'tokens: 1000')}`);
    const res = await cli('finetune', changed);
    expect(res.code).toBe(1);
    expect(res.err).toMatch(/finetuned-scale: holds a different finetune \(differs in tokens\).*--overwrite/);
    expect((await cli('finetune', changed, '--overwrite')).code).toBe(0);
    expect(report('scale').fit.tokens).toBe(1000);
  });

  it('fills the CE/KL rows from the eval stage\'s metrics.json once eval has run (never before)', async () => {
    const evalOut = join(dir, 'eval');
    const r = recipe('ev', `  method: [scale, feature_scale]\n${base}eval:\n  corpus: [${join(dir, 'heldout.txt')}]\n  out: ${evalOut}\n`);
    expect((await cli('finetune', r, '--overwrite')).code).toBe(0); // the test before left a finetune of other settings
    expect(report('scale').after.ce_spliced).toBeNull();
    expect(report('scale').downstream_source).toMatch(/not yet measured: run `sae-train eval`/);
    // What eval writes (src/eval/types.ts): <eval.out>/<run folder>/metrics.json, finetunes as <run>__finetuned-<method>.
    const m = (ce: number) => JSON.stringify({ ce_spliced: ce, ce_diff: ce - 3, ce_recovered: 0.9, kl_div: ce - 3.1 });
    mkdirSync(join(evalOut, 'run0'), { recursive: true });
    mkdirSync(join(evalOut, 'run0__finetuned-scale'), { recursive: true });
    writeFileSync(join(evalOut, 'run0', 'metrics.json'), m(3.5));
    writeFileSync(join(evalOut, 'run0__finetuned-scale', 'metrics.json'), m(3.25));
    expect((await cli('finetune', r)).code).toBe(0);
    const rep = report('scale');
    expect([rep.before.ce_spliced, rep.after.ce_spliced, rep.after.kl_div]).toEqual([3.5, 3.25, 3.25 - 3.1]);
    expect(rep.downstream_source).toMatch(/eval stage/);
    expect(report('feature_scale').after.ce_spliced).toBeNull(); // eval has not measured that one
  });

  it('refuses (loudly, writing nothing) a finetune whose encoder or L0 moved', () => {
    const w = loadCheckpoint(run).weights;
    const fired = new Float64Array([3, 0, 2]);
    expect(() => checkFrozenEncoder(w, { ...w, b_enc: w.b_enc.map((v, i) => (i === 0 ? v + 1e-7 : v)) }, fired, fired, 1, 1)).toThrow(/b_enc differs from the parent's/);
    expect(() => checkFrozenEncoder(w, w, fired, new Float64Array([3, 1, 2]), 1, 1)).toThrow(/L0 changed/);
    expect(() => checkFrozenEncoder(w, { ...w, W_dec: w.W_dec.map((v) => v * 2) }, fired, fired.slice(), 1, 1)).not.toThrow();
  });

  it('feature_scale by Adam (the path for d_sae > 8192) agrees with the closed form', async () => {
    const run1 = join(dir, 'ck', 'run1');
    writeRun(run1, loadCheckpoint(run).weights, HOOK);
    const r = recipe('adam', `  method: feature_scale\n${base.replace(run, run1).replace('tokens: 2000', 'tokens: 60000')}  feature_scale_solver: adam\n  scale_lr: 0.05\n  lr_decay_tokens: 20000\n`);
    expect((await cli('finetune', r)).code).toBe(0);
    const adam = JSON.parse(readFileSync(join(run1, 'finetuned-feature_scale', 'finetune.json'), 'utf8')) as FinetuneReport;
    expect(adam.fit.solver).toBe('adam');
    const closed = report('feature_scale').fit.scales as number[];
    (adam.fit.scales as number[]).forEach((v, i) => expect(Math.abs(v / closed[i] - 1), `feature ${i}`).toBeLessThan(0.01));
    expect(adam.after.l0).toBe(adam.before.l0);
  });

  it('names the problem on bad input', async () => {
    const missing = await cli('finetune', recipe('c', `  method: scale\n${base.replace(run, join(dir, 'ck', 'nope'))}`));
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/finetune.checkpoints: ".*nope" is not a checkpoint.*sae-train train/);

    const other = join(dir, 'cache16');
    const fx = makeFixture({ n: 8, d: 16, T: 2000, noise: 0, seed: 8 });
    writeCache(other, HOOK, fx.x, 16);
    const dIn = await cli('finetune', recipe('d', `  method: scale\n${base.replace(`cache: ${cache}`, `cache: ${other}`)}`));
    expect(dIn.code).toBe(1);
    expect(dIn.err).toMatch(/run0: the SAE has d_in 32 but cache .*cache16 has d_in 16/);

    const unknown = await cli('finetune', recipe('e', `  method: [scale, rescale]\n${base}`));
    expect(unknown.code).toBe(1);
    expect(unknown.err).toMatch(/finetune.method: .*valid ones are scale, feature_scale, decoder, decoder_kl/);

    const held = await cli('finetune', recipe('f', `  method: scale\n${base.replace('heldout_tokens: 600', 'heldout_tokens: 2000')}`));
    expect(held.code).toBe(1);
    expect(held.err).toMatch(/finetune.heldout_tokens: .*more than half/);
    expect(held.err).not.toMatch(/internal error/);
  });
});
