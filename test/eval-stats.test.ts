import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import { beforeAll, describe, expect, it } from 'vitest';
import { dropLowest, keepTopK } from '../src/eval/ablate.js';
import { ceDiffDistribution, CE_DIFF_QUANTILES } from '../src/eval/cediff.js';
import { ceDiffCorrelation } from '../src/eval/correlation.js';
import { pearson, quantiles, ranks, shareOfLargest, spearman } from '../src/eval/stats.js';
import { interpolateModelSize } from '../src/eval/model_size.js';
import { cleanReference, disposeRef, splicedCeKl } from '../src/eval/logprobs.js';
import { useTestBackend } from './helpers/backend.js';
import { numpy } from './helpers/finetune-fixture.js';

/** Statistics and ablations against numpy / scipy. */

const rng = seedrandom('eval-stats');
const sample = (n: number, ties = false) => Float64Array.from({ length: n }, () => (ties ? Math.floor(rng() * 5) : rng() * 4 - 1 + rng() ** 3 * 3));

beforeAll(useTestBackend);

describe('statistics vs numpy/scipy', () => {
  it('quantiles, Pearson, Spearman (with ties), rankdata, share of the largest', () => {
    const a = sample(301), b = Float64Array.from(a, (v) => v * 0.5 + rng()), c = sample(301, true), d = sample(301, true);
    const r = numpy(`
from scipy import stats
a, b, c, d = inp('a'), inp('b'), inp('c'), inp('d')
out('q', np.quantile(a, [${CE_DIFF_QUANTILES.join(', ')}]))
out('p', [stats.pearsonr(a, b)[0], stats.pearsonr(c, d)[0]])
out('s', [stats.spearmanr(a, b)[0], stats.spearmanr(c, d)[0], stats.spearmanr(a, c)[0]])
out('r', stats.rankdata(c))
def share(v, f):
    s = np.sort(v)[::-1]; k = int(np.ceil(f * len(v))); pos = np.maximum(s, 0)
    return pos[:k].sum() / pos.sum()
out('sh', [share(a, 0.01), share(a, 0.1)])
`, { a, b, c, d });
    const close = (x: number, y: number) => expect(x).toBeCloseTo(y, 10);
    quantiles(a, CE_DIFF_QUANTILES).forEach((v, i) => close(v, r.q[i]));
    close(pearson(a, b), r.p[0]);
    close(pearson(c, d), r.p[1]);
    close(spearman(a, b), r.s[0]);
    close(spearman(c, d), r.s[1]);
    close(spearman(a, c), r.s[2]);
    ranks(c).forEach((v, i) => close(v, r.r[i]));
    close(shareOfLargest(a, 0.01), r.sh[0]);
    close(shareOfLargest(a, 0.1), r.sh[1]);
  });

  it('undefined cases are NaN or 0, not errors', () => {
    expect(pearson([1, 1, 1], [1, 2, 3])).toBeNaN();
    expect(quantiles([], [0.5])[0]).toBeNaN();
    expect(shareOfLargest([-1, -2], 0.1)).toBe(0);
  });

  it('correlation matrix: symmetric, unit diagonal, entries = pairwise statistics', () => {
    const runs = [0, 1, 2].map((i) => ({ run: `r${i}`, perSequence: Array.from(sample(40)) }));
    const m = ceDiffCorrelation(runs);
    expect(m.runs).toEqual(['r0', 'r1', 'r2']);
    for (let i = 0; i < 3; i++) {
      expect(m.pearson[i][i]).toBe(1);
      for (let j = 0; j < 3; j++) {
        expect(m.pearson[i][j]).toBe(m.pearson[j][i]);
        if (i !== j) expect(m.spearman[i][j]).toBeCloseTo(spearman(runs[i].perSequence, runs[j].perSequence), 12);
      }
    }
    expect(() => ceDiffCorrelation([runs[0], { run: 'x', perSequence: [1] }])).toThrow(/different windows/);
  });

  it('CE-diff distribution: per-sequence means, worst tokens with context', () => {
    const windows = [Int32Array.from([9, 1, 2, 3]), Int32Array.from([9, 4, 5, 6])];
    const clean = Float32Array.from([1, 1, 1, 2, 2, 2]);
    const spliced = Float32Array.from([1, 1.5, 1, 2, 2, 5]);
    const dist = ceDiffDistribution(clean, spliced, windows, { count: 2, contextTokens: 2, decode: (ids) => ids.map((i) => `t${i}`).join(' ') });
    expect(dist.per_sequence).toEqual([0.5 / 3, 1]);
    expect(dist.worst_tokens.map((w) => [w.seq, w.pos, w.token, w.context, w.ce_diff])).toEqual([[1, 3, 't6', 't4 t5', 3], [0, 2, 't2', 't9 t1', 0.5]]);
    expect(dist.share_worst_1pct).toBeCloseTo(3 / 3.5, 6);
    expect(dist.quantiles.map((q) => q.q)).toEqual(CE_DIFF_QUANTILES);
  });
});

describe('top-k and drop-lowest vs numpy', () => {
  it('keep the k largest / drop the k smallest active features per token', async () => {
    const N = 40, F = 12;
    const f = Float32Array.from({ length: N * F }, () => (rng() < 0.5 ? 0 : rng() * 3));
    const ks = [1, 3, 12, 20];
    const r = numpy(`
f = inp('f').reshape(${N}, ${F})
for k in [${ks.join(', ')}]:
    top = np.zeros_like(f); low = np.zeros_like(f)
    for i, row in enumerate(f):
        act = np.flatnonzero(row > 0)
        order = act[np.argsort(row[act])]          # active, ascending
        keep = order[-k:] if k < len(order) else order
        top[i, keep] = row[keep]
        rest = order[k:]
        low[i, rest] = row[rest]
    out(f'top{k}', top); out(f'low{k}', low)
`, { f });
    const t = tf.tensor2d(f, [N, F]);
    for (const k of ks) {
      const [top, low] = [keepTopK(t, k), dropLowest(t, k)];
      expect(Array.from(await top.data())).toEqual(Array.from(Float32Array.from(r[`top${k}`])));
      expect(Array.from(await low.data())).toEqual(Array.from(Float32Array.from(r[`low${k}`])));
      tf.dispose([top, low]);
    }
    t.dispose();
  });
});

describe('CE and KL from logits vs numpy', () => {
  it('per-token CE of both and KL(clean ‖ spliced) over predicted positions', async () => {
    const B = 2, T = 5, V = 7;
    const lc = Float32Array.from({ length: B * T * V }, () => rng() * 6 - 3);
    const ls = Float32Array.from(lc, (v) => v + (rng() - 0.5) * 2);
    const toks = Int32Array.from({ length: B * T }, () => Math.floor(rng() * V));
    const r = numpy(`
B, T, V = ${B}, ${T}, ${V}
lc, ls, tok = inp('lc').reshape(B, T, V), inp('ls').reshape(B, T, V), inp('tok').reshape(B, T).astype(int)
def lsm(x): m = x.max(-1, keepdims=True); return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))
a, b = lsm(lc)[:, :-1], lsm(ls)[:, :-1]
nxt = tok[:, 1:]
ce = lambda l: -np.take_along_axis(l, nxt[..., None], -1)[..., 0]
out('cec', ce(a)); out('ces', ce(b)); out('kl', (np.exp(a) * (a - b)).sum(-1))
`, { lc, ls, tok: toks });
    const tok = tf.tensor2d(toks, [B, T], 'int32');
    const [c3, s3] = [tf.tensor3d(lc, [B, T, V]), tf.tensor3d(ls, [B, T, V])];
    const { ref, ceBT1 } = cleanReference(c3, tok);
    const { ceBT1: ceS, klBT1 } = splicedCeKl(s3, ref);
    const near = async (t: tf.Tensor, want: Float64Array) => Array.from(await t.data()).forEach((v, i) => expect(v).toBeCloseTo(want[i], 5));
    expect(ceBT1.shape).toEqual([B, T - 1]);
    await near(ceBT1, r.cec);
    await near(ceS, r.ces);
    await near(klBT1, r.kl);
    tf.dispose([tok, c3, s3, ceBT1, ceS, klBT1]);
    disposeRef(ref);
  });
});

describe('model-size equivalence', () => {
  it('interpolates in log parameter count between the bracketing references', () => {
    const refs = [{ model: 'small', params: 1e6, ce: 4 }, { model: 'big', params: 1e8, ce: 3 }, { model: 'mid', params: 1e7, ce: 3.5 }];
    const r = interpolateModelSize(3.25, refs);
    expect(r.between).toEqual(['mid', 'big']);
    expect(Math.log10(r.equivalent_params!)).toBeCloseTo(7.5, 10);
    expect(r.references.map((x) => x.model)).toEqual(['small', 'mid', 'big']);
    const worse = interpolateModelSize(5, refs);
    expect(worse.between).toBeNull();
    expect(worse.equivalent_params).toBeNull();
  });
});
