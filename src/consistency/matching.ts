/**
 * One-to-one minimum-cost matchings (linear assignment), in plain JS float64.
 *
 * Both solvers keep LP duals u [n], v [m] with u_i + v_j ≤ c_ij on every edge they know and equality on matched
 * edges, so Σu + Σv is a certificate: it equals the cost of the matching, and it is a lower bound on any
 * one-to-one matching of the edges it covers (LP duality).
 */

/** A matching of every row to a distinct column, with its duals. */
export interface Assignment {
  /** [n] column matched to each row */
  rowToCol: Int32Array;
  /** Σ cost of matched edges */
  cost: number;
  /** [n] row duals */
  u: Float64Array;
  /** [m] column duals */
  v: Float64Array;
}

/**
 * Exact Hungarian algorithm with potentials (shortest augmenting paths, O(n²·m)) on a dense cost matrix
 * costNM [n, m] row-major, n ≤ m. Every row is matched to a distinct column.
 */
export function hungarian(costNM: ArrayLike<number>, n: number, m: number): Assignment {
  if (n > m) throw new Error(`hungarian: needs rows ≤ columns, got ${n} × ${m}`);
  if (costNM.length !== n * m) throw new Error(`hungarian: cost has ${costNM.length} entries, expected ${n}×${m}`);
  // 1-based arrays as in the classic formulation; index 0 is the virtual start.
  const u = new Float64Array(n + 1), v = new Float64Array(m + 1);
  const p = new Int32Array(m + 1), way = new Int32Array(m + 1);
  const minv = new Float64Array(m + 1);
  const used = new Uint8Array(m + 1);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    minv.fill(Infinity);
    used.fill(0);
    do {
      used[j0] = 1;
      const i0 = p[j0];
      const rowOff = (i0 - 1) * m - 1;
      const ui0 = u[i0];
      let delta = Infinity, j1 = 0;
      for (let j = 1; j <= m; j++) {
        if (used[j]) continue;
        const cur = costNM[rowOff + j] - ui0 - v[j];
        if (cur < minv[j]) { minv[j] = cur; way[j] = j0; }
        if (minv[j] < delta) { delta = minv[j]; j1 = j; }
      }
      for (let j = 0; j <= m; j++) {
        if (used[j]) { u[p[j]] += delta; v[j] -= delta; } else minv[j] -= delta;
      }
      j0 = j1;
    } while (p[j0] !== 0);
    do {
      const j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0);
  }
  const rowToCol = new Int32Array(n);
  for (let j = 1; j <= m; j++) if (p[j]) rowToCol[p[j] - 1] = j - 1;
  let cost = 0;
  for (let i = 0; i < n; i++) cost += costNM[i * m + rowToCol[i]];
  return { rowToCol, cost, u: u.slice(1), v: v.slice(1) };
}

/** Edges of a bipartite graph, row by row (CSR). */
export interface SparseGraph {
  n: number;
  m: number;
  /** [n + 1] row i's edges are rowPtr[i] .. rowPtr[i+1]−1 */
  rowPtr: Int32Array;
  /** [edges] column of each edge */
  col: Int32Array;
  /** [edges] cost of each edge */
  cost: Float64Array;
}

/** Builds a CSR graph from per-row edge lists, keeping the cheapest of duplicate (row, col) edges. */
export function buildGraph(n: number, m: number, rows: { cols: ArrayLike<number>; costs: ArrayLike<number> }[]): SparseGraph {
  const rowPtr = new Int32Array(n + 1);
  const seen = new Map<number, number>();
  const cols: number[] = [], costs: number[] = [];
  for (let i = 0; i < n; i++) {
    seen.clear();
    const r = rows[i];
    for (let e = 0; e < r.cols.length; e++) {
      const j = r.cols[e], c = r.costs[e];
      if (j < 0 || j >= m) throw new Error(`buildGraph: row ${i} has column ${j} outside 0..${m - 1}`);
      const at = seen.get(j);
      if (at === undefined) { seen.set(j, cols.length); cols.push(j); costs.push(c); }
      else if (c < costs[at]) costs[at] = c;
    }
    rowPtr[i + 1] = cols.length;
  }
  return { n, m, rowPtr, col: Int32Array.from(cols), cost: Float64Array.from(costs) };
}

/** Binary min-heap of (key, column) with lazy deletion. */
class MinHeap {
  keys = new Float64Array(1024);
  vals = new Int32Array(1024);
  size = 0;
  push(k: number, v: number): void {
    if (this.size === this.keys.length) {
      const nk = new Float64Array(this.size * 2); nk.set(this.keys); this.keys = nk;
      const nv = new Int32Array(this.size * 2); nv.set(this.vals); this.vals = nv;
    }
    let i = this.size++;
    const keys = this.keys, vals = this.vals;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (keys[p] <= k) break;
      keys[i] = keys[p]; vals[i] = vals[p]; i = p;
    }
    keys[i] = k; vals[i] = v;
  }
  /** Removes the minimum; its key and value are left in topKey/topVal. */
  topKey = 0;
  topVal = 0;
  pop(): void {
    const keys = this.keys, vals = this.vals;
    this.topKey = keys[0]; this.topVal = vals[0];
    const k = keys[--this.size], v = vals[this.size];
    let i = 0;
    const n = this.size;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && keys[c + 1] < keys[c]) c++;
      if (keys[c] >= k) break;
      keys[i] = keys[c]; vals[i] = vals[c]; i = c;
    }
    keys[i] = k; vals[i] = v;
  }
}

/** Edges to add to a row: columns and their exact costs. */
export interface RowEdges { cols: ArrayLike<number>; costs: ArrayLike<number> }

/**
 * Exact minimum-cost perfect matching on a sparse bipartite graph (n = m), by successive shortest augmenting
 * paths (Dijkstra on reduced costs, as in Jonker–Volgenant) from a greedy start. The result is optimal on the
 * edges the solver holds: its duals satisfy u_i + v_j ≤ c_ij on all of them, with equality on matched edges.
 *
 * Edges can be added later (addEdges) and the matching re-solved warm: this is how a caller prices out
 * edges missing from a candidate set. When a row cannot reach a free column (the graph has no perfect
 * matching), `expandRow(i)` is asked for more of row i's edges (e.g. all of them); without it, an error.
 */
export class SparseMatcher {
  readonly n: number;
  /** per-row edge lists (growable) */
  private cols: Int32Array[];
  private costs: Float64Array[];
  private deg: Int32Array;
  readonly u: Float64Array;
  readonly v: Float64Array;
  readonly rowToCol: Int32Array;
  readonly colToRow: Int32Array;
  /** cost of each row's matched edge */
  private matchedCost: Float64Array;
  /** rows whose full edge list was requested through expandRow */
  readonly expandedRows = new Set<number>();
  /** Dijkstra scratch */
  private dist: Float64Array;
  private pred: Int32Array;
  private predCost: Float64Array;
  private stamp: Int32Array;
  private doneStamp: Int32Array;
  private epoch = 0;
  private heap = new MinHeap();
  /** columns scanned in total (a measure of work) */
  scanned = 0;

  constructor(g: SparseGraph, private expandRow?: (i: number) => RowEdges) {
    if (g.n !== g.m) throw new Error(`SparseMatcher: needs a square problem, got ${g.n} × ${g.m}`);
    const n = (this.n = g.n);
    this.cols = []; this.costs = [];
    this.deg = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const a = g.rowPtr[i], b = g.rowPtr[i + 1];
      this.cols.push(g.col.slice(a, b));
      this.costs.push(g.cost.slice(a, b));
      this.deg[i] = b - a;
    }
    this.u = new Float64Array(n);
    this.v = new Float64Array(n);
    this.rowToCol = new Int32Array(n).fill(-1);
    this.colToRow = new Int32Array(n).fill(-1);
    this.matchedCost = new Float64Array(n);
    this.dist = new Float64Array(n);
    this.pred = new Int32Array(n);
    this.predCost = new Float64Array(n);
    this.stamp = new Int32Array(n);
    this.doneStamp = new Int32Array(n);
  }

  /** Number of edges held. */
  get edges(): number {
    let e = 0;
    for (let i = 0; i < this.n; i++) e += this.deg[i];
    return e;
  }

  /** Row i's edges (views; do not modify). */
  rowEdges(i: number): { cols: Int32Array; costs: Float64Array } {
    return { cols: this.cols[i].subarray(0, this.deg[i]), costs: this.costs[i].subarray(0, this.deg[i]) };
  }

  /**
   * Adds edges to row i (a cheaper duplicate replaces the old cost). Keeps the duals feasible by lowering u_i;
   * if that loosens row i's matched edge, row i is unmatched, to be re-augmented by solve().
   */
  addEdges(i: number, e: RowEdges): void {
    const cols = this.cols[i], costs = this.costs[i];
    const index = new Map<number, number>();
    for (let k = 0; k < this.deg[i]; k++) index.set(cols[k], k);
    let nc = cols, ncost = costs, deg = this.deg[i];
    for (let k = 0; k < e.cols.length; k++) {
      const j = e.cols[k], c = e.costs[k];
      const at = index.get(j);
      if (at !== undefined) {
        if (c < ncost[at]) ncost[at] = c;
        continue;
      }
      if (deg === nc.length) {
        const grow = Math.max(8, nc.length * 2);
        const a = new Int32Array(grow); a.set(nc); nc = a;
        const b = new Float64Array(grow); b.set(ncost); ncost = b;
      }
      index.set(j, deg);
      nc[deg] = j; ncost[deg] = c; deg++;
    }
    this.cols[i] = nc; this.costs[i] = ncost; this.deg[i] = deg;
    if (this.rowToCol[i] < 0) return;
    let minRed = Infinity;
    for (let k = 0; k < deg; k++) minRed = Math.min(minRed, ncost[k] - this.v[nc[k]]);
    const j = this.rowToCol[i];
    const c = ncost[index.get(j)!];
    this.matchedCost[i] = c;
    if (minRed < c - this.v[j]) {
      this.u[i] = minRed;
      this.rowToCol[i] = -1;
      this.colToRow[j] = -1;
    }
  }

  /** Greedy start: each row's cheapest edge (v = 0), taken when its column is still free. */
  private greedyStart(): void {
    for (let i = 0; i < this.n; i++) {
      if (this.rowToCol[i] >= 0) continue;
      const cols = this.cols[i], costs = this.costs[i];
      let best = Infinity, bj = -1;
      for (let k = 0; k < this.deg[i]; k++) {
        const r = costs[k] - this.v[cols[k]];
        if (r < best) { best = r; bj = k; }
      }
      this.u[i] = best;
      if (bj >= 0 && this.colToRow[cols[bj]] < 0) {
        const j = cols[bj];
        this.rowToCol[i] = j; this.colToRow[j] = i; this.matchedCost[i] = costs[bj];
      }
    }
  }

  /** Matches every free row; returns this. */
  solve(onProgress?: (matched: number) => void): this {
    if (this.rowToCol.every((j) => j < 0) && this.v.every((x) => x === 0)) this.greedyStart();
    let matched = 0;
    for (let i = 0; i < this.n; i++) if (this.rowToCol[i] >= 0) matched++;
    for (let r = 0; r < this.n; r++) {
      if (this.rowToCol[r] >= 0) continue;
      while (!this.augment(r)) {
        if (!this.expandRow || this.expandedRows.has(r))
          throw new Error(`SparseMatcher: row ${r} cannot be matched: the graph has no perfect matching`);
        this.expandedRows.add(r);
        this.addEdges(r, this.expandRow(r));
      }
      matched++;
      if (onProgress && (matched & 1023) === 0) onProgress(matched);
    }
    return this;
  }

  /** One shortest augmenting path from free row r; false when no free column is reachable. */
  private augment(r: number): boolean {
    const { u, v, dist, pred, predCost, stamp, doneStamp, colToRow, heap } = this;
    const ep = ++this.epoch;
    heap.size = 0;
    // A free row has no tight edge to keep: make its cheapest reduced edge 0.
    {
      const cols = this.cols[r], costs = this.costs[r];
      let m = Infinity;
      for (let k = 0; k < this.deg[r]; k++) m = Math.min(m, costs[k] - v[cols[k]]);
      if (m === Infinity) return false;
      u[r] = m;
    }
    const popped: number[] = [];
    const relax = (i: number, di: number) => {
      const cols = this.cols[i], costs = this.costs[i], ui = u[i];
      for (let k = 0, deg = this.deg[i]; k < deg; k++) {
        const j = cols[k];
        if (doneStamp[j] === ep) continue;
        const nd = di + costs[k] - ui - v[j];
        if (stamp[j] !== ep || nd < dist[j]) {
          stamp[j] = ep; dist[j] = nd; pred[j] = i; predCost[j] = costs[k];
          heap.push(nd, j);
        }
      }
    };
    relax(r, 0);
    let end = -1, delta = 0;
    while (heap.size > 0) {
      heap.pop();
      const j = heap.topVal, d = heap.topKey;
      if (doneStamp[j] === ep || d > dist[j]) continue;
      doneStamp[j] = ep;
      popped.push(j);
      if (colToRow[j] < 0) { end = j; delta = d; break; }
      relax(colToRow[j], d);
    }
    this.scanned += popped.length;
    if (end < 0) return false;
    // Potentials: scanned columns move by (d_j − δ); reached rows' u follow from their (tight) matched edges.
    for (const j of popped) v[j] += dist[j] - delta;
    let j = end;
    for (;;) {
      const i = pred[j];
      const prev = this.rowToCol[i];
      this.rowToCol[i] = j; colToRow[j] = i; this.matchedCost[i] = predCost[j];
      if (i === r) break;
      j = prev;
    }
    for (const jj of popped) {
      const i = colToRow[jj];
      u[i] = this.matchedCost[i] - v[jj];
    }
    return true;
  }

  /** The matching found (after solve()). */
  result(): Assignment {
    let cost = 0;
    for (let i = 0; i < this.n; i++) {
      if (this.rowToCol[i] < 0) throw new Error('SparseMatcher.result: solve() has not matched every row');
      cost += this.matchedCost[i];
    }
    return { rowToCol: this.rowToCol.slice(), cost, u: this.u.slice(), v: this.v.slice() };
  }

  /** Smallest reduced cost over the edges held (≥ 0 up to rounding when the duals are feasible). */
  minReducedCost(): number {
    let m = Infinity;
    for (let i = 0; i < this.n; i++) {
      const cols = this.cols[i], costs = this.costs[i];
      for (let k = 0; k < this.deg[i]; k++) m = Math.min(m, costs[k] - this.u[i] - this.v[cols[k]]);
    }
    return m;
  }
}

/**
 * A lower bound on the cost of ANY perfect matching of the full n × n problem, from duals v and what is known
 * of the edges the matcher does not hold: every left-out edge (i, j) costs at least max(rowFloor_i, colFloor_j)
 * (e.g. 1 − τ_i where τ_i is the smallest cosine kept in row i's top-k), and c_ij − v_j ≥ extraFloor_i
 * (e.g. from an exact pricing pass over row i while the duals were v_old ≥ v: v only decreases).
 *
 * For any v, LB(v) = Σ_i min_j (c_ij − v_j) + Σ_j v_j ≤ OPT (Lagrangian dual). Row i's min over left-out
 * edges is bounded below by min over ALL j of (max(rowFloor_i, colFloor_j) − v_j), found in O(log n) per row
 * after sorting columns by colFloor. Rows in `exactRows` have no left-out edges. Returns the bound and
 * per-row minima (rows whose min falls below u_i are where the matching could still improve).
 */
export function lowerBoundWithFloors(
  m: SparseMatcher,
  rowFloor: Float64Array,
  colFloor: Float64Array,
  exactRows: ReadonlySet<number> = new Set(),
  extraFloor?: Float64Array,
): { bound: number; rowMin: Float64Array } {
  const n = m.n, v = m.v;
  // Columns sorted by floor G_j. Row i: columns with G_j ≤ F_i contribute F_i − v_j (min: F_i − max v over
  // them, a prefix); columns with G_j > F_i contribute G_j − v_j (min over a suffix).
  const order = Array.from({ length: n }, (_, j) => j).sort((a, b) => colFloor[a] - colFloor[b]);
  const sortedFloor = new Float64Array(n), prefMaxV = new Float64Array(n + 1), sufMin = new Float64Array(n + 1);
  prefMaxV[0] = -Infinity;
  for (let p = 0; p < n; p++) {
    sortedFloor[p] = colFloor[order[p]];
    prefMaxV[p + 1] = Math.max(prefMaxV[p], v[order[p]]);
  }
  sufMin[n] = Infinity;
  for (let p = n - 1; p >= 0; p--) sufMin[p] = Math.min(sufMin[p + 1], colFloor[order[p]] - v[order[p]]);
  const rowMin = new Float64Array(n);
  let bound = 0;
  for (let j = 0; j < n; j++) bound += v[j];
  for (let i = 0; i < n; i++) {
    const { cols, costs } = m.rowEdges(i);
    let best = Infinity;
    for (let k = 0; k < cols.length; k++) best = Math.min(best, costs[k] - v[cols[k]]);
    if (!exactRows.has(i)) {
      let lo = 0, hi = n; // first position with G > F_i
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (sortedFloor[mid] <= rowFloor[i]) lo = mid + 1; else hi = mid;
      }
      const left = Math.min(rowFloor[i] - prefMaxV[lo], sufMin[lo]);
      best = Math.min(best, extraFloor ? Math.max(left, extraFloor[i]) : left);
    }
    rowMin[i] = best;
    bound += best;
  }
  return { bound, rowMin };
}
