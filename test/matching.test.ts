import { beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import seedrandom from 'seedrandom';
import { buildGraph, hungarian, lowerBoundWithFloors, SparseMatcher } from '../src/consistency/matching.js';
import { python } from './helpers/python.js';
import { tmpDir } from './helpers/tmp.js';

/** scipy.optimize.linear_sum_assignment on a dense [n, m] cost: the independent reference. */
const PY_LSA = `
import json, sys, numpy as np
from scipy.optimize import linear_sum_assignment
out = []
for d in json.load(open(sys.argv[1])):
    c = np.array(d['cost'], dtype=np.float64).reshape(d['n'], d['m'])
    r, k = linear_sum_assignment(c)
    out.append({'cols': k.tolist(), 'cost': float(c[r, k].sum())})
print(json.dumps(out))
`;

const dir = tmpDir();
let calls = 0;
type Lsa = { cols: number[]; cost: number };
/** Solves several instances in one Python process (scipy's import dominates a call). */
function scipyBatch(instances: { cost: ArrayLike<number>; n: number; m: number }[]): Lsa[] {
  const f = join(dir, `lsa-${calls++}.json`);
  writeFileSync(f, JSON.stringify(instances.map((x) => ({ n: x.n, m: x.m, cost: Array.from(x.cost) }))));
  return JSON.parse(python(PY_LSA, [f]));
}

function randomCost(n: number, m: number, rng: () => number): Float64Array {
  return Float64Array.from({ length: n * m }, () => rng());
}

/** 1 − cosine of random unit vectors, a share of them planted noisy copies (like two seeds' dictionaries). */
function cosineCost(n: number, d: number, rng: () => number, planted = 0.5): Float64Array {
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  const unit = (x: number[]) => { const s = Math.hypot(...x); return x.map((y) => y / s); };
  const a = Array.from({ length: n }, () => unit(Array.from({ length: d }, gauss)));
  const perm = Array.from({ length: n }, (_, i) => i).sort(() => rng() - 0.5);
  const b = perm.map((p, j) => (j < planted * n ? unit(a[p].map((x) => x + 0.08 * gauss())) : unit(Array.from({ length: d }, gauss))));
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) c[i * n + j] = 1 - a[i].reduce((s, x, k) => s + x * b[j][k], 0);
  return c;
}

/** Indices of the k smallest entries of each row / column. */
function rowTopK(c: Float64Array, n: number, m: number, k: number): number[][] {
  return Array.from({ length: n }, (_, i) => Array.from({ length: m }, (_, j) => j).sort((x, y) => c[i * m + x] - c[i * m + y]).slice(0, k));
}
function colTopK(c: Float64Array, n: number, m: number, k: number): number[][] {
  return Array.from({ length: m }, (_, j) => Array.from({ length: n }, (_, i) => i).sort((x, y) => c[x * m + j] - c[y * m + j]).slice(0, k));
}

function graphFrom(c: Float64Array, n: number, edges: Set<number>[]) {
  return buildGraph(n, n, edges.map((s, i) => ({ cols: [...s], costs: [...s].map((j) => c[i * n + j]) })));
}

// Every instance up front, solved by scipy in one Python process.
type Inst = { n: number; m: number; cost: Float64Array };
const DENSE: Inst[] = (() => { const rng = seedrandom('dense'); return [[40, 40], [30, 55], [1, 3]].map(([n, m]) => ({ n, m, cost: randomCost(n, m, rng) })); })();
const SPARSE: Inst[] = (() => { const rng = seedrandom('sparse'); return [60, 150].flatMap((n) => [{ n, m: n, cost: randomCost(n, n, rng) }, { n, m: n, cost: cosineCost(n, 16, rng) }]); })();
const WARM: Inst = { n: 80, m: 80, cost: randomCost(80, 80, seedrandom('warm')) };
// k, share of planted features: half random makes top-k miss the optimum; all planted keeps it
const BOUND_CASES = [[2, 0.5], [6, 0.5], [4, 1]];
const BOUND: Inst[] = (() => { const rng = seedrandom('bound'); return BOUND_CASES.map(([, planted]) => ({ n: 120, m: 120, cost: cosineCost(120, 12, rng, planted) })); })();
let REF: Map<Inst, Lsa>;
beforeAll(() => {
  const all = [...DENSE, ...SPARSE, WARM, ...BOUND];
  const refs = scipyBatch(all);
  REF = new Map(all.map((x, t) => [x, refs[t]]));
});

describe('hungarian (dense)', () => {
  it('equals scipy linear_sum_assignment on square and rectangular random instances', () => {
    for (const inst of DENSE) {
      const { n, m, cost: c } = inst;
      const ours = hungarian(c, n, m);
      const ref = REF.get(inst)!;
      expect(ours.cost).toBeCloseTo(ref.cost, 10);
      expect(Array.from(ours.rowToCol)).toEqual(ref.cols);
      expect(new Set(ours.rowToCol).size).toBe(n);
      // Duals certify optimality: feasible everywhere, Σu + Σv = cost (for square problems).
      let minRed = Infinity;
      for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) minRed = Math.min(minRed, c[i * m + j] - ours.u[i] - ours.v[j]);
      expect(minRed).toBeGreaterThan(-1e-9);
      if (n === m) expect(ours.u.reduce((a, b) => a + b, 0) + ours.v.reduce((a, b) => a + b, 0)).toBeCloseTo(ours.cost, 9);
    }
  });
});

describe('SparseMatcher', () => {
  it('equals scipy when the candidate set contains the optimum', () => {
    const rng = seedrandom('sparse-candidates');
    for (const inst of SPARSE) {
      const { n, cost: c } = inst;
      {
        const ref = REF.get(inst)!;
        const top = rowTopK(c, n, n, 3);
        // candidates: the optimum, each row's 3 cheapest, 3 random columns
        const edges = top.map((t, i) => new Set([ref.cols[i], ...t, ...[0, 1, 2].map(() => Math.floor(rng() * n))]));
        const m = new SparseMatcher(graphFrom(c, n, edges)).solve();
        const res = m.result();
        expect(res.cost).toBeCloseTo(ref.cost, 9);
        expect(Array.from(res.rowToCol)).toEqual(ref.cols);
        expect(m.minReducedCost()).toBeGreaterThan(-1e-9);
        expect(res.u.reduce((a, b) => a + b, 0) + res.v.reduce((a, b) => a + b, 0)).toBeCloseTo(res.cost, 9);
      }
    }
  });

  it('asks for more edges when the candidate graph has no perfect matching, and ends optimal', () => {
    const rng = seedrandom('expand');
    const n = 50;
    const c = randomCost(n, n, rng);
    // every row may only use columns 0..4: no perfect matching without expansion
    const edges = Array.from({ length: n }, () => new Set([0, 1, 2, 3, 4]));
    const asked: number[] = [];
    const m = new SparseMatcher(graphFrom(c, n, edges), (i) => {
      asked.push(i);
      return { cols: Array.from({ length: n }, (_, j) => j), costs: Array.from({ length: n }, (_, j) => c[i * n + j]) };
    }).solve();
    expect(asked.length).toBeGreaterThan(0);
    const res = m.result();
    expect(new Set(res.rowToCol).size).toBe(n);
    // optimal on the edges it holds: compare with the dense Hungarian (checked against scipy above) on the same
    // graph, missing edges at a prohibitive cost
    const held = new Float64Array(n * n).fill(1e6);
    for (let i = 0; i < n; i++) { const e = m.rowEdges(i); e.cols.forEach((j, k) => { held[i * n + j] = e.costs[k]; }); }
    expect(res.cost).toBeCloseTo(hungarian(held, n, n).cost, 9);
    expect(() => new SparseMatcher(graphFrom(c, n, edges)).solve()).toThrow(/no perfect matching/);
  });

  it('re-solves warm after edges are added (pricing) and reaches the full optimum', () => {
    const { n, cost: c } = WARM;
    const ref = REF.get(WARM)!;
    const edges = rowTopK(c, n, n, 2).map((t, i) => new Set([...t, (i + 1) % n, i]));
    const m = new SparseMatcher(graphFrom(c, n, edges)).solve();
    // price out: add every edge with negative reduced cost, until none is left
    for (let round = 0; round < 50; round++) {
      let added = 0;
      for (let i = 0; i < n; i++) {
        const cols: number[] = [], costs: number[] = [];
        for (let j = 0; j < n; j++) if (c[i * n + j] - m.u[i] - m.v[j] < -1e-12) { cols.push(j); costs.push(c[i * n + j]); }
        if (cols.length) { m.addEdges(i, { cols, costs }); added++; }
      }
      if (!added) break;
      m.solve();
    }
    expect(m.result().cost).toBeCloseTo(ref.cost, 9);
  });
});

describe('lowerBoundWithFloors', () => {
  it('bounds the full optimum from below, and is tight when top-k candidates hold the optimum', () => {
    const n = 120;
    let tight = 0;
    for (const [t, [k]] of BOUND_CASES.entries()) {
      const c = BOUND[t].cost;
      const ref = REF.get(BOUND[t])!;
      const rows = rowTopK(c, n, n, k), cols = colTopK(c, n, n, k);
      const edges = rows.map((t) => new Set(t));
      cols.forEach((t, j) => t.forEach((i) => edges[i].add(j)));
      const m = new SparseMatcher(graphFrom(c, n, edges), (i) => ({ cols: Array.from({ length: n }, (_, j) => j), costs: Array.from({ length: n }, (_, j) => c[i * n + j]) })).solve();
      // floors: every left-out edge costs at least the k-th smallest cost of its row and of its column
      const rowFloor = Float64Array.from(rows, (t, i) => c[i * n + t[k - 1]]);
      const colFloor = Float64Array.from(cols, (t, j) => c[t[k - 1] * n + j]);
      const { bound } = lowerBoundWithFloors(m, rowFloor, colFloor, m.expandedRows);
      const cand = m.result().cost;
      expect(bound).toBeLessThanOrEqual(ref.cost + 1e-9);
      expect(ref.cost).toBeLessThanOrEqual(cand + 1e-9);
      if (cand - bound < 1e-9) { tight++; expect(cand).toBeCloseTo(ref.cost, 9); }
    }
    // with every feature planted, the bound certifies the optimum
    expect(tight).toBeGreaterThan(0);
  });
});
