import { join } from 'node:path';
import { hookSpectra, type HookSpectrum } from '../activations/cache-spectrum.js';
import { logSpectrum } from '../activations/spectrum-log.js';
import { DEGENERATE_TOP5 } from '../activations/spectrum.js';
import { writeJsonAtomic } from '../io/atomic.js';

export const SPECTRUM_FILE = 'spectrum.json';

/** What eval writes to `<eval.out>/spectrum.json`: each evaluated hook's activation spectrum (training cache). */
export interface EvalSpectrumFile {
  degenerate_top5: number;
  hooks: Record<string, HookSpectrum & { degenerate: boolean }>;
}

/**
 * The activation spectrum of each hook the evaluated runs were trained on (from cfg.json's cache: its
 * manifest's record, or computed now), on the console (warning for degenerate hooks) and in spectrum.json.
 * Runs whose cache is not named or gone are left out.
 */
export function writeEvalSpectrum(out: string, cfgs: readonly { cache?: string; hook_name: string }[]): EvalSpectrumFile {
  const spectra = hookSpectra(cfgs);
  const file: EvalSpectrumFile = {
    degenerate_top5: DEGENERATE_TOP5,
    hooks: Object.fromEntries(Object.entries(spectra).map(([h, s]) => [h, { ...s, degenerate: s.top5 > DEGENERATE_TOP5 }])),
  };
  if (Object.keys(spectra).length) {
    logSpectrum('eval', spectra);
    writeJsonAtomic(join(out, SPECTRUM_FILE), file);
  }
  return file;
}
