import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Field, FixedSizeList, Float32, Table, makeData, makeVector, tableToIPC, Vector } from 'apache-arrow';
import seedrandom from 'seedrandom';
import type { AblationPoint, AllAtOnce, Correlation, RunMetrics, Summary } from '../../src/eval/types.js';
import { saveCheckpoint, CHECKPOINT_FORMAT, type SaeCfg } from '../../src/sae/checkpoint.js';
import type { SaeWeights } from '../../src/sae/weights.js';
import { writeFeatureFixture } from './features-fixture.js';
import { writeAttentionFixture } from './attention-fixture.js';

/**
 * What `sae-train eval` writes (src/eval/types.ts, the contract), made up for tests of the report: plausible
 * numbers, every file in its exact format. Also checkpoints with metrics.jsonl under `trainOut` (for the
 * training curves and a real consistency run).
 */

export const HOOKS = [{ hook: 'blocks.1.hook_resid_pre', layer: 1 }, { hook: 'blocks.3.hook_resid_pre', layer: 3 }];
export const SIZES = [32, 64];
export const SEEDS = [0, 1];
export const METHODS = ['scale', 'decoder'];
export const D_IN = 16;
const N_SEQ = 90, SEQ_LEN = 24;

export const runName = (hook: string, d: number, s: number) => `${hook}__d${d}__s${s}`;

function gauss(rng: () => number) {
  return () => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
}

function fakeMetrics(run: string, hook: string, layer: number, d_sae: number, seed: number, parent: string | null, method: string | null, perSeq: number[]): RunMetrics {
  const rng = seedrandom(run);
  const shrink = method ? 0.98 : 0.82 - 0.02 * layer;
  const ce_clean = 3.1, ce_diff = (0.35 + 0.05 * layer) * (32 / d_sae) ** 0.3 * (method ? 0.8 : 1) + 0.01 * rng();
  const ce_zero = 8.5;
  const ablation = (ks: number[], worse: (k: number) => number): AblationPoint[] => ks.map((k) => ({ k, ce: ce_clean + ce_diff + worse(k), mse: 0.1 + worse(k), l0: Math.min(k, 20) }));
  return {
    run, checkpoint: `ck/${run}`, hook, layer, d_sae, seed, l1_coefficient: 5, parent, finetune_method: method, tokens: N_SEQ * SEQ_LEN,
    mse: 0.12 / (method ? 1.3 : 1), explained_variance: 0.7 + 0.05 * Math.log2(d_sae / 32) + 0.02 * rng() + (method ? 0.04 : 0),
    l0: 18 - 2 * Math.log2(d_sae / 32) + rng(), l1: 30, l2_ratio: shrink, relative_reconstruction_bias: shrink + 0.05, cosine: 0.9,
    dead_fraction: 0.02 * Math.log2(d_sae / 16) * rng(), dense_fraction: 0.01,
    density_histogram: { edges: [-6, -5, -4, -3, -2, -1], counts: [3, 8, 20, 30, 4] },
    ce_clean, ce_spliced: ce_clean + ce_diff, ce_zero_ablation: ce_zero, ce_mean_ablation: 6, ce_recovered: (ce_zero - ce_clean - ce_diff) / (ce_zero - ce_clean),
    ce_diff, kl_div: ce_diff * 0.9,
    ce_diff_distribution: {
      quantiles: [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99].map((q) => ({ q, value: ce_diff * (q < 0.5 ? -1 + 2 * q : Math.exp(4 * (q - 0.5)) - 0.5) })),
      share_worst_1pct: 0.21, share_worst_10pct: 0.55, per_sequence: perSeq,
      worst_tokens: [0, 1, 2].map((i) => ({ seq: i, pos: 5 + i, token: [' the', ' Paris', '\n'][i], context: `… once upon a <time> ${i} & more`, ce_clean: 1.2, ce_spliced: 4 + i, ce_diff: 2.8 + i })),
    },
    propagation: [{ layer: layer + 1, hook: `blocks.${layer + 1}.hook_resid_post`, relative_error: 0.2 }],
    topk: ablation([1, 4, 16, 64], (k) => 2 / k),
    drop_lowest: ablation([1, 4, 16], (k) => 0.01 * k),
  };
}

function sequencesArrow(meanAct: Float32Array, ceDiff: Float32Array): Uint8Array {
  const n = ceDiff.length;
  const child = makeData({ type: new Float32(), length: n * D_IN, nullCount: 0, data: meanAct });
  const type = new FixedSizeList(D_IN, new Field('item', child.type, false));
  return tableToIPC(new Table({
    seq: makeVector(Int32Array.from({ length: n }, (_, i) => i)),
    ce_diff: makeVector(ceDiff),
    mean_act: new Vector([makeData({ type, length: n, nullCount: 0, child })]),
  }), 'file');
}

function perTokenArrow(rng: () => number): Uint8Array {
  const n = N_SEQ * SEQ_LEN;
  const g = gauss(rng);
  const ce_clean = Float32Array.from({ length: n }, () => 2 + rng() * 3);
  const ce_diff = Float32Array.from({ length: n }, () => (rng() < 0.03 ? Math.exp(1 + g()) : 0.3 * g()));
  return tableToIPC(new Table({
    seq: makeVector(Int32Array.from({ length: n }, (_, i) => Math.floor(i / SEQ_LEN))),
    pos: makeVector(Int32Array.from({ length: n }, (_, i) => 1 + (i % SEQ_LEN))),
    token: makeVector(Int32Array.from({ length: n }, () => Math.floor(rng() * 50257))),
    ce_clean: makeVector(ce_clean),
    ce_spliced: makeVector(Float32Array.from(ce_clean, (c, i) => c + ce_diff[i])),
    ce_diff: makeVector(ce_diff),
    kl: makeVector(Float32Array.from(ce_diff, (d) => Math.abs(d))),
  }), 'file');
}

export const SAMPLES_MD = `# Samples

Prompts continued by the clean model and with the SAE spliced in (temperature 0.8, seed 0). **First divergence** marked with ⟨⟩.

## blocks.1.hook_resid_pre__d32__s0

| prompt | clean | spliced |
|---|---|---|
| The meaning of life is | to find out what you love | to find ⟨a⟩ way out |
| In the beginning | God created the heaven | God created ⟨them⟩ all |

<script>alert("not run")</script>
`;

/** Writes the eval outputs of every run (and finetunes) under evalOut. */
export function writeEvalFixture(evalOut: string): { runs: RunMetrics[] } {
  const rng = seedrandom('eval-fixture');
  const g = gauss(rng);
  mkdirSync(evalOut, { recursive: true });
  // Sequences: two groups of mean activations, the second reconstructed badly (high CE-diff).
  const centre = [Float32Array.from({ length: D_IN }, g), Float32Array.from({ length: D_IN }, g)];
  const group = Array.from({ length: N_SEQ }, (_, i) => (i % 5 === 0 ? 1 : 0));
  const meanAct = new Float32Array(N_SEQ * D_IN);
  group.forEach((c, i) => { for (let k = 0; k < D_IN; k++) meanAct[i * D_IN + k] = 3 * centre[c][k] + g(); });
  const runs: RunMetrics[] = [];
  for (const { hook, layer } of HOOKS)
    for (const d of SIZES)
      for (const s of SEEDS) {
        const name = runName(hook, d, s);
        const perSeq = group.map((c) => (c ? 1.5 : 0.2) + 0.1 * g() + 0.05 * layer);
        runs.push(fakeMetrics(name, hook, layer, d, s, null, null, perSeq));
        if (s === 0 && d === 32) for (const m of METHODS) runs.push(fakeMetrics(`${name}__finetuned-${m}`, hook, layer, d, s, name, m, perSeq.map((x) => 0.8 * x)));
      }
  for (const r of runs) {
    const dir = join(evalOut, r.run);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'metrics.json'), JSON.stringify(r, null, 2));
    writeFeatureFixture(dir, r.run, r.hook, r.d_sae);
    if (r.d_sae === 32 && r.seed === 0) writeAttentionFixture(dir, r.run, r.hook, r.layer);
    if (!r.parent) {
      writeFileSync(join(dir, 'per_token.arrow'), perTokenArrow(seedrandom(r.run)));
      writeFileSync(join(dir, 'sequences.arrow'), sequencesArrow(meanAct, Float32Array.from(r.ce_diff_distribution.per_sequence)));
    }
  }
  const summary: Summary = { model: 'models/gpt2-tiny', corpus: ['data/heldout.txt'], tokens: N_SEQ * SEQ_LEN, backend: 'wasm (simd on, 1 thread)', runs };
  writeFileSync(join(evalOut, 'summary.json'), JSON.stringify(summary, null, 2));
  const corrRuns = runs.filter((r) => !r.parent && r.seed === 0);
  const pearson = corrRuns.map((a) => corrRuns.map((b) => (a === b ? 1 : a.layer === b.layer ? 0.9 : 0.6)));
  const corr: Correlation = { runs: corrRuns.map((r) => r.run), pearson, spearman: pearson.map((row) => row.map((v) => (v === 1 ? 1 : v - 0.1))) };
  writeFileSync(join(evalOut, 'correlation.json'), JSON.stringify(corr));
  const aao: AllAtOnce[] = [{ runs: corrRuns.filter((r) => r.d_sae === 32).map((r) => r.run), hooks: HOOKS.map((h) => h.hook), ce_clean: 3.1, ce_spliced_all: 4.2, kl_div_all: 1, sum_single_ce_diff: 0.9, additivity_ratio: 1.22 }];
  writeFileSync(join(evalOut, 'all_at_once.json'), JSON.stringify(aao));
  writeFileSync(join(evalOut, 'samples.md'), SAMPLES_MD);
  return { runs };
}

function cfg(name: string, hook: string, layer: number, d_sae: number, seed: number): SaeCfg {
  return {
    format: CHECKPOINT_FORMAT, architecture: 'standard', run_name: name, d_in: D_IN, d_sae, hook_name: hook, hook_layer: layer,
    model_name: 'tiny', seed, l1_coefficient: 5, lr: 4e-4, tokens: 4000, batch_size: 64, apply_b_dec_to_input: true,
    normalize_activations: 'none', activation_scale: 1, decoder: 'unit_norm', backend: 'wasm', dtype: 'float32',
    cache_manifest_sha256: 'fixture', parent: null, finetune_method: null, created_by: 'test fixture',
  };
}

/** Checkpoints for every base run (seed 1 shares most features with seed 0) with sparsity and metrics.jsonl. */
export function writeTrainFixture(trainOut: string): void {
  const rng = seedrandom('train-fixture');
  const g = gauss(rng);
  for (const { hook, layer } of HOOKS)
    for (const d of SIZES) {
      const w0: SaeWeights = { dIn: D_IN, dSae: d, W_enc: Float32Array.from({ length: D_IN * d }, g), b_enc: new Float32Array(d), W_dec: Float32Array.from({ length: d * D_IN }, g), b_dec: new Float32Array(D_IN) };
      for (const s of SEEDS) {
        const w: SaeWeights = s === 0 ? w0 : { ...w0, W_dec: Float32Array.from(w0.W_dec, (x, t) => (Math.floor(t / D_IN) < 0.75 * d ? x + 0.3 * g() : g())), W_enc: Float32Array.from(w0.W_enc, (x) => x + 0.4 * g()) };
        const name = runName(hook, d, s);
        const dir = join(trainOut, name);
        saveCheckpoint(dir, cfg(name, hook, layer, d, s), w, Float32Array.from({ length: d }, (_, i) => -5 + (4 * i) / d));
        const rows = Array.from({ length: 40 }, (_, i) => ({ step: i * 10, tokens: i * 640, loss: 2 * Math.exp(-i / 10) + 0.1 + 0.02 * rng(), mse: Math.exp(-i / 12), l1: 0.5, l0: 60 * Math.exp(-i / 8) + 15, dead_fraction: 0.01 * i / 40, lr: 4e-4 }));
        writeFileSync(join(dir, 'metrics.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
      }
    }
}
