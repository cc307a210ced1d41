import { writeArrowTable } from '../io/arrow.js';
import { ceDiffs, perSequenceMeans } from './cediff.js';

/**
 * The per-token and per-sequence Arrow files of one run (types.ts): per_token.arrow has one row per
 * predicted token, `pos` being the predicted token's position (1..T−1) and `token` its id.
 */
export function writePerToken(path: string, windows: readonly Int32Array[], ceClean: Float32Array, ceSpliced: Float32Array, kl: Float32Array): void {
  const W = windows.length, T = windows[0].length, n = W * (T - 1);
  const seq = new Int32Array(n), pos = new Int32Array(n), token = new Int32Array(n);
  for (let w = 0, i = 0; w < W; w++)
    for (let t = 1; t < T; t++, i++) {
      seq[i] = w;
      pos[i] = t;
      token[i] = windows[w][t];
    }
  writeArrowTable(path, { seq, pos, token, ce_clean: ceClean, ce_spliced: ceSpliced, ce_diff: ceDiffs(ceClean, ceSpliced), kl }, n);
}

/** sequences.arrow: per window, mean ce_diff and the mean clean hook activation [d_in] over its positions. */
export function writeSequences(path: string, windows: number, T: number, ceClean: Float32Array, ceSpliced: Float32Array, meanActWD: Float32Array, dIn: number): void {
  const seq = Int32Array.from({ length: windows }, (_, i) => i);
  const ceDiff = Float32Array.from(perSequenceMeans(ceDiffs(ceClean, ceSpliced), T - 1));
  writeArrowTable(path, { seq, ce_diff: ceDiff, mean_act: { listSize: dIn, values: meanActWD } }, windows);
}
