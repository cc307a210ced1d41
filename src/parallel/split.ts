/**
 * How a stage's independent units are split into parts: one function for `workers` (processes on one
 * machine) and `sae-train slurm` (array tasks), so that both give the same split and results identical to
 * one process.
 */
import { UserError } from '../io/errors.js';

/** Part `index` (0-based) of `count`. */
export interface Part {
  readonly index: number;
  readonly count: number;
}

/** Parses `i/n` (0 ≤ i < n), as `--part` takes it; `what` names the flag or key in the error. */
export function parsePart(text: string, what = '--part'): Part {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!m) throw new UserError(`${what}: "${text}" is not of the form i/n (e.g. 0/4: the first of 4 parts).`);
  const index = Number(m[1]), count = Number(m[2]);
  if (count < 1) throw new UserError(`${what}: "${text}": the number of parts must be at least 1.`);
  if (index >= count) throw new UserError(`${what}: "${text}": the part index counts from 0 and must be below ${count}.`);
  return Object.freeze({ index, count });
}

export const formatPart = (p: Part): string => `${p.index}/${p.count}`;

/**
 * Splits units with the given costs into `count` parts of near-equal total cost (longest processing time
 * first: each unit, most costly first, goes to the part with the least cost so far; ties go to the lower
 * index, so the split is deterministic). Returns, per part, the unit indices in ascending order. Parts may be
 * empty when there are fewer units than parts.
 */
export function balancedSplit(costs: readonly number[], count: number): number[][] {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`balancedSplit: count must be a positive integer, got ${count}`);
  const order = costs.map((c, i) => ({ c, i })).sort((a, b) => b.c - a.c || a.i - b.i);
  const parts: number[][] = Array.from({ length: count }, () => []);
  const load = new Array<number>(count).fill(0);
  for (const { c, i } of order) {
    let best = 0;
    for (let p = 1; p < count; p++) if (load[p] < load[best]) best = p;
    parts[best].push(i);
    load[best] += c;
  }
  return parts.map((p) => p.sort((a, b) => a - b));
}

/**
 * Splits units 0..n-1 into `count` contiguous blocks [start, end) whose sizes differ by at most one (the
 * first n % count blocks get the extra unit). For harvest, where the parts' outputs are concatenated in order.
 */
export function contiguousSplit(n: number, count: number): Array<readonly [number, number]> {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`contiguousSplit: count must be a positive integer, got ${count}`);
  const base = Math.floor(n / count), extra = n % count;
  const out: Array<readonly [number, number]> = [];
  let at = 0;
  for (let p = 0; p < count; p++) {
    const len = base + (p < extra ? 1 : 0);
    out.push([at, at + len] as const);
    at += len;
  }
  return out;
}

/** The units of `part` under balancedSplit. */
export const unitsOfPart = (costs: readonly number[], part: Part): number[] => balancedSplit(costs, part.count)[part.index];
