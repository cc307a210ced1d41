/**
 * Bounded top-k per feature: one binary min-heap of k (value, position) pairs per feature, in flat typed
 * arrays (memory n·k, independent of how many tokens are pushed). Order: larger value first; equal values
 * keep the earlier position (smaller id), so the result equals a stable full sort of every pushed pair.
 * Pure data + functions; the heap root (slot 0 of a feature) is its current k-th best.
 */

export interface TopKHeaps {
  /** features */
  n: number;
  /** capacity per feature */
  k: number;
  /** [n, k] heap values */
  vals: Float32Array;
  /** [n, k] heap positions (global token ids) */
  pos: Int32Array;
  /** [n] filled slots */
  size: Int32Array;
}

export function emptyTopK(n: number, k: number): TopKHeaps {
  return { n, k, vals: new Float32Array(n * k), pos: new Int32Array(n * k), size: new Int32Array(n) };
}

/** a is worse than b: smaller value, or equal value and later position. */
const worse = (va: number, pa: number, vb: number, pb: number) => va < vb || (va === vb && pa > pb);

/**
 * Would (value, position) enter feature i's top-k? True while the heap is not full, else when it beats the root.
 * Callers test this first (cheap) and then push, so that work outside (e.g. copying a context) is only done on entry.
 */
export function entersTopK(h: TopKHeaps, i: number, value: number, position: number): boolean {
  if (h.size[i] < h.k) return true;
  const r = i * h.k;
  return worse(h.vals[r], h.pos[r], value, position);
}

/**
 * Pushes (value, position) into feature i's heap. Returns the slot (0..k−1) it now occupies, or −1 when it
 * did not enter. A value that enters a full heap evicts the root; `onMove(from, to)` reports every slot move
 * so that payloads kept per slot (contexts) can follow their entry.
 */
export function pushTopK(h: TopKHeaps, i: number, value: number, position: number, onMove?: (from: number, to: number) => void): number {
  const k = h.k, base = i * k;
  const { vals, pos } = h;
  let s: number;
  if (h.size[i] < k) {
    // sift up from the end
    s = h.size[i]++;
    while (s > 0) {
      const p = (s - 1) >> 1;
      if (!worse(value, position, vals[base + p], pos[base + p])) break;
      vals[base + s] = vals[base + p];
      pos[base + s] = pos[base + p];
      onMove?.(p, s);
      s = p;
    }
  } else {
    if (!worse(vals[base], pos[base], value, position)) return -1;
    // replace the root and sift down
    s = 0;
    for (;;) {
      const l = 2 * s + 1;
      if (l >= k) break;
      const r = l + 1;
      const c = r < k && worse(vals[base + r], pos[base + r], vals[base + l], pos[base + l]) ? r : l;
      if (!worse(vals[base + c], pos[base + c], value, position)) break;
      vals[base + s] = vals[base + c];
      pos[base + s] = pos[base + c];
      onMove?.(c, s);
      s = c;
    }
  }
  vals[base + s] = value;
  pos[base + s] = position;
  return s;
}

/** Feature i's kept entries, best first: values, positions and their heap slots. */
export function sortedTopK(h: TopKHeaps, i: number): { values: number[]; positions: number[]; slots: number[] } {
  const base = i * h.k, m = h.size[i];
  const slots = Array.from({ length: m }, (_, s) => s);
  slots.sort((a, b) => h.vals[base + b] - h.vals[base + a] || h.pos[base + a] - h.pos[base + b]);
  return { values: slots.map((s) => h.vals[base + s]), positions: slots.map((s) => h.pos[base + s]), slots };
}
