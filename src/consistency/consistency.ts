import { CosineEngine, mean, type Comparison } from './cosine.js';
import { buildGraph, hungarian, lowerBoundWithFloors, SparseMatcher } from './matching.js';

/**
 * Feature consistency between two dictionaries (decoder rows or encoder columns, as unit rows [n, d]):
 * mean max cosine similarity both ways, and an optimal one-to-one matching on cost 1 − cosine.
 *
 * Small dictionaries (n ≤ denseMax) are matched exactly by the Hungarian algorithm on the full matrix.
 * Larger ones on a candidate graph: each row's and each column's top-k cosines from the blocked pass. The
 * sparse matching is optimal on the candidates; a dual lower bound (lowerBoundWithFloors: every left-out
 * edge is no closer than the k-th best of its row and of its column) says how far the full optimum can be.
 * Rows where that bound cannot exclude an improvement are priced exactly (a blocked pass over just those
 * rows), their improving edges added, and the matching re-solved warm, until no row can improve (then the
 * matching is the full optimum, up to float32 rounding) or maxRounds is reached (then the gap is reported).
 */

export interface MatchOptions {
  /** Dictionaries up to this many features are matched densely (Hungarian). */
  denseMax: number;
  /** Candidates per row and per column for the sparse matcher. */
  topK: number;
  /** Rounds of exact pricing of rows the bound cannot settle. */
  maxRounds: number;
  /** Progress: units of work (rows of A through a blocked pass) done so far, by phase. */
  onProgress?: (phase: string, rowsDone: number) => void;
}

export const DEFAULT_MATCH: MatchOptions = { denseMax: 1024, topK: 16, maxRounds: 8 };

/** An optimal one-to-one matching of A's features to B's. */
export interface DictionaryMatch {
  method: 'hungarian' | 'sparse';
  /** [n] B feature matched to each A feature */
  rowToCol: Int32Array;
  /** [n] cosine of each matched pair */
  matchedCos: Float32Array;
  /** Σ (1 − cosine) of the matching */
  cost: number;
  /** a lower bound on the cost of every one-to-one matching (dual certificate) */
  lowerBound: number;
  /** candidates kept per row and per column (sparse) */
  topK: number;
  /** edges the sparse matcher held at the end */
  edges: number;
  /** rows whose every edge was computed because the candidates left them unmatchable */
  expandedRows: number;
  pricingRounds: number;
  /** rows priced exactly, summed over rounds */
  pricedRows: number;
  /** seconds spent augmenting (sparse matcher or Hungarian) and pricing (blocked passes over suspicious rows) */
  solveSeconds: number;
  pricingSeconds: number;
}

/** Tolerance (in cosine units) below which float32 rounding, not a better matching, explains a reduced cost. */
const PRICE_TOL = 1e-6;
/** Edges added per priced row. */
const PRICE_K = 32;

/** Exact cosines of one unit row of A against every unit row of B [m, d] (host float64 dot products). */
function exactRow(aUnit: Float32Array, i: number, bUnit: Float32Array, m: number, d: number): { cols: Int32Array; costs: Float64Array } {
  const cols = new Int32Array(m), costs = new Float64Array(m);
  const a0 = i * d;
  for (let j = 0; j < m; j++) {
    let s = 0;
    for (let k = 0, b0 = j * d; k < d; k++) s += aUnit[a0 + k] * bUnit[b0 + k];
    cols[j] = j;
    costs[j] = 1 - s;
  }
  return { cols, costs };
}

/**
 * Matches A (unit rows [n, d]) to the dictionary held by `engine` (B, unit rows bUnit [m, d], n = m for the
 * sparse path, n ≤ m for the dense one). `cmp` is the blocked pass of A against B (with topK ≥ opts.topK,
 * and keepFull when n ≤ denseMax).
 */
export async function matchDictionaries(engine: CosineEngine, aUnit: Float32Array, bUnit: Float32Array, cmp: Comparison, opts: MatchOptions = DEFAULT_MATCH): Promise<DictionaryMatch> {
  const { n, m } = cmp;
  const d = engine.d;
  if (n <= opts.denseMax && cmp.full) {
    const cost = new Float64Array(n * m);
    for (let t = 0; t < cost.length; t++) cost[t] = 1 - cmp.full[t];
    const t0 = performance.now();
    const a = hungarian(cost, n, m);
    const matchedCos = Float32Array.from(a.rowToCol, (j, i) => cmp.full![i * m + j]);
    return { method: 'hungarian', rowToCol: a.rowToCol, matchedCos, cost: a.cost, lowerBound: a.cost, topK: m, edges: n * m, expandedRows: 0, pricingRounds: 0, pricedRows: 0, solveSeconds: (performance.now() - t0) / 1000, pricingSeconds: 0 };
  }
  if (n !== m) throw new Error(`matchDictionaries: the sparse matcher needs equal sizes, got ${n} and ${m}`);
  const k = cmp.k;
  if (k < 1) throw new Error('matchDictionaries: the comparison kept no candidates (topK 0)');
  // Candidate graph: row i's top-k columns ∪ the columns that have row i in their top-k.
  const rows = Array.from({ length: n }, (_, i) => ({
    cols: Array.from(cmp.rowTopIdx.subarray(i * k, (i + 1) * k)),
    costs: Array.from(cmp.rowTopVal.subarray(i * k, (i + 1) * k), (c) => 1 - c),
  }));
  for (let j = 0; j < m; j++)
    for (let t = j * k; t < (j + 1) * k; t++) {
      const i = cmp.colTopIdx[t];
      if (i >= 0) { rows[i].cols.push(j); rows[i].costs.push(1 - cmp.colTopVal[t]); }
    }
  const rowFloor = Float64Array.from({ length: n }, (_, i) => 1 - cmp.rowTopVal[i * k + k - 1]);
  const colFloor = Float64Array.from({ length: m }, (_, j) => 1 - cmp.colTopVal[j * k + k - 1]);
  let solveMs = 0, priceMs = 0, t0 = performance.now();
  const matcher = new SparseMatcher(buildGraph(n, m, rows), (i) => exactRow(aUnit, i, bUnit, m, d));
  matcher.solve();
  solveMs += performance.now() - t0;

  // Pricing: rows the bound cannot settle get their K best reduced costs computed exactly and added as edges;
  // every column not returned then has c_ij − v_j ≥ 1 − T_K for good (v only decreases), a floor for the bound.
  const extraFloor = new Float64Array(n).fill(-Infinity);
  let rounds = 0, priced = 0, bound: number;
  for (;;) {
    const lb = lowerBoundWithFloors(matcher, rowFloor, colFloor, matcher.expandedRows, extraFloor);
    const suspicious: number[] = [];
    for (let i = 0; i < n; i++) if (lb.rowMin[i] < matcher.u[i] - PRICE_TOL) suspicious.push(i);
    if (suspicious.length === 0 || rounds >= opts.maxRounds) { bound = lb.bound; break; }
    rounds++;
    priced += suspicious.length;
    const s = suspicious.length;
    const aSub = new Float32Array(s * d);
    suspicious.forEach((i, t) => aSub.set(aUnit.subarray(i * d, (i + 1) * d), t * d));
    t0 = performance.now();
    const top = await engine.priceRows(aSub, s, matcher.v, PRICE_K, (r) => opts.onProgress?.(`pricing round ${rounds}`, r));
    priceMs += performance.now() - t0;
    suspicious.forEach((i, t) => {
      const cols: number[] = [], costs: number[] = [];
      for (let q = t * top.k; q < (t + 1) * top.k; q++) { cols.push(top.idx[q]); costs.push(1 - (top.val[q] - matcher.v[top.idx[q]])); }
      extraFloor[i] = Math.max(extraFloor[i], 1 - top.val[(t + 1) * top.k - 1]);
      matcher.addEdges(i, { cols, costs });
    });
    t0 = performance.now();
    matcher.solve();
    solveMs += performance.now() - t0;
  }
  const res = matcher.result();
  const matchedCos = Float32Array.from(res.rowToCol, (j, i) => {
    const e = matcher.rowEdges(i);
    for (let q = 0; q < e.cols.length; q++) if (e.cols[q] === j) return 1 - e.costs[q];
    throw new Error('unreachable: matched edge missing');
  });
  return {
    method: 'sparse', rowToCol: res.rowToCol, matchedCos, cost: res.cost, lowerBound: Math.min(bound, res.cost),
    topK: k, edges: matcher.edges, expandedRows: matcher.expandedRows.size, pricingRounds: rounds, pricedRows: priced,
    solveSeconds: solveMs / 1000, pricingSeconds: priceMs / 1000,
  };
}

/** Share of matched pairs with cosine ≥ t. */
export function matchedFraction(matchedCos: ArrayLike<number>, t: number): number {
  let c = 0;
  for (let i = 0; i < matchedCos.length; i++) if (matchedCos[i] >= t) c++;
  return matchedCos.length ? c / matchedCos.length : 0;
}

/** Features of one dictionary grouped by firing frequency (rank deciles), with how well each group matches. */
export interface DensityGroup {
  /** 0 = rarest tenth of the features … 9 = most frequent */
  decile: number;
  features: number;
  /** log10 firing frequency range of the group (null: never fired / not finite) */
  log10_freq_min: number | null;
  log10_freq_max: number | null;
  mean_max_cosine: number;
  mean_matched_cosine: number;
  /** `matched_fraction@<t>` for each threshold */
  [key: `matched_fraction@${string}`]: number;
}

/**
 * log10Freq [n] (sparsity.safetensors), maxCos [n] (best cosine in the other dictionary), matchedCos [n]
 * (cosine of the optimal one-to-one partner) → 10 groups by frequency rank, rarest first.
 */
export function densityDeciles(log10Freq: Float32Array, maxCos: Float32Array, matchedCos: Float32Array, thresholds: readonly number[]): DensityGroup[] {
  const n = log10Freq.length;
  const key = (i: number) => (Number.isNaN(log10Freq[i]) ? -Infinity : log10Freq[i]);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => key(a) - key(b) || a - b);
  const groups: DensityGroup[] = [];
  for (let g = 0; g < 10; g++) {
    const idx = order.slice(Math.floor((g * n) / 10), Math.floor(((g + 1) * n) / 10));
    if (idx.length === 0) continue;
    const fin = (x: number) => (Number.isFinite(x) ? x : null);
    const grp: DensityGroup = {
      decile: g,
      features: idx.length,
      log10_freq_min: fin(key(idx[0])),
      log10_freq_max: fin(key(idx[idx.length - 1])),
      mean_max_cosine: mean(idx.map((i) => maxCos[i])),
      mean_matched_cosine: mean(idx.map((i) => matchedCos[i])),
    };
    const mc = idx.map((i) => matchedCos[i]);
    for (const t of thresholds) grp[`matched_fraction@${t}`] = matchedFraction(mc, t);
    groups.push(grp);
  }
  return groups;
}

/** Quantiles (linear interpolation) of values at the given q's. */
export function quantiles(values: ArrayLike<number>, qs: readonly number[]): { q: number; value: number }[] {
  const s = Float64Array.from(values).sort();
  return qs.map((q) => {
    if (s.length === 0) return { q, value: NaN };
    const pos = q * (s.length - 1), lo = Math.floor(pos), hi = Math.ceil(pos);
    return { q, value: s[lo] + (s[hi] - s[lo]) * (pos - lo) };
  });
}

/** How the features of a smaller dictionary reappear in a larger one (feature splitting). */
export interface SplittingTable {
  /** threshold for counting a larger-SAE feature as a "child" of a smaller-SAE feature */
  child_threshold: number;
  /** quantiles of each small feature's best cosine with any large feature */
  best_cosine_quantiles: { q: number; value: number }[];
  /** small features per bin of best cosine: [lo, hi) */
  best_cosine_histogram: { lo: number; hi: number; features: number }[];
  /** small features by their number of children: "0", "1", "2", "3", "4+" */
  children_histogram: { children: string; features: number }[];
  mean_children: number;
  /** share of large features whose best cosine with any small feature is ≥ child_threshold */
  large_covered_fraction: number;
}

/** cmp: small (A) against large (B), with countAbove = childThreshold. */
export function splittingTable(cmp: Comparison, childThreshold: number): SplittingTable {
  if (!cmp.rowCount) throw new Error('splittingTable: the comparison has no counts (countAbove)');
  // first bin: everything below 0.1 (down to −1); last bin includes 1
  const edges = [-1, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];
  const hist = edges.slice(0, -1).map((lo, b) => ({ lo, hi: edges[b + 1], features: 0 }));
  for (const c of cmp.rowMax) {
    let b = 0;
    while (b < hist.length - 1 && c >= edges[b + 1]) b++;
    hist[b].features++;
  }
  const labels = ['0', '1', '2', '3', '4+'];
  const children = labels.map((children) => ({ children, features: 0 }));
  for (const c of cmp.rowCount) children[Math.min(c, 4)].features++;
  let covered = 0;
  for (const c of cmp.colMax) if (c >= childThreshold) covered++;
  return {
    child_threshold: childThreshold,
    best_cosine_quantiles: quantiles(cmp.rowMax, [0.05, 0.25, 0.5, 0.75, 0.95]),
    best_cosine_histogram: hist,
    children_histogram: children,
    mean_children: mean(cmp.rowCount),
    large_covered_fraction: cmp.m ? covered / cmp.m : 0,
  };
}
