import { describe, expect, it } from 'vitest';
import { balancedSplit, contiguousSplit, parsePart, unitsOfPart } from '../src/parallel/split.js';

describe('parallel split', () => {
  it('balancedSplit covers every unit once and balances cost (LPT)', () => {
    const costs = [512, 512, 1024, 1024, 4096, 256, 256, 2048];
    const parts = balancedSplit(costs, 3);
    expect(parts.flat().sort((a, b) => a - b)).toEqual(costs.map((_, i) => i));
    const loads = parts.map((p) => p.reduce((s, i) => s + costs[i], 0));
    // LPT bound: max load ≤ 4/3 · optimum; the optimum is at least max(total/3, largest unit)
    const lower = Math.max(costs.reduce((a, b) => a + b) / 3, Math.max(...costs));
    expect(Math.max(...loads)).toBeLessThanOrEqual((4 / 3) * lower);
    expect(parts.every((p) => p.every((v, k) => k === 0 || p[k - 1] < v))).toBe(true);
  });

  it('balancedSplit is deterministic with ties and leaves extra parts empty', () => {
    expect(balancedSplit([1, 1, 1, 1], 2)).toEqual([[0, 2], [1, 3]]);
    expect(balancedSplit([5, 5], 4)).toEqual([[0], [1], [], []]);
    expect(unitsOfPart([3, 1, 2], { index: 1, count: 2 })).toEqual([1, 2]);
    expect(() => balancedSplit([1], 0)).toThrow(/positive integer/);
  });

  it('contiguousSplit gives ordered blocks that differ by at most one', () => {
    expect(contiguousSplit(10, 3)).toEqual([[0, 4], [4, 7], [7, 10]]);
    expect(contiguousSplit(2, 4)).toEqual([[0, 1], [1, 2], [2, 2], [2, 2]]);
  });

  it('parsePart accepts i/n and names the mistake otherwise', () => {
    expect(parsePart('1/4')).toEqual({ index: 1, count: 4 });
    expect(() => parsePart('4/4')).toThrow(/below 4/);
    expect(() => parsePart('0/0')).toThrow(/at least 1/);
    expect(() => parsePart('a/b')).toThrow(/form i\/n/);
  });
});
