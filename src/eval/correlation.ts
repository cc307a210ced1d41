import type { Correlation } from './types.js';
import { pearson, spearman } from './stats.js';

/**
 * Pearson and Spearman correlation of per-sequence CE-diff between every pair of runs (correlation.json):
 * do SAEs at different layers hurt the same sequences? Pure. Runs must share the eval windows.
 */
export function ceDiffCorrelation(runs: readonly { run: string; perSequence: readonly number[] }[]): Correlation {
  const n = runs.length;
  const pe = Array.from({ length: n }, () => new Array<number>(n).fill(NaN));
  const sp = Array.from({ length: n }, () => new Array<number>(n).fill(NaN));
  for (let i = 0; i < n; i++)
    for (let j = i; j < n; j++) {
      if (runs[i].perSequence.length !== runs[j].perSequence.length)
        throw new Error(`correlation: ${runs[i].run} and ${runs[j].run} were evaluated on different windows`);
      pe[i][j] = pe[j][i] = i === j ? 1 : pearson(runs[i].perSequence, runs[j].perSequence);
      sp[i][j] = sp[j][i] = i === j ? 1 : spearman(runs[i].perSequence, runs[j].perSequence);
    }
  return { runs: runs.map((r) => r.run), pearson: pe, spearman: sp };
}
