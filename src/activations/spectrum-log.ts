import { info, warn } from '../ui/log.js';
import { degenerateWarning, isDegenerate, spectrumLine, type SpectrumSummary } from './spectrum.js';

/** One console line per hook with its spectrum, and a warning naming each degenerate hook. */
export function logSpectrum(stage: string, spectra: Record<string, SpectrumSummary>, hooks: readonly string[] = Object.keys(spectra)): void {
  for (const h of hooks) {
    const sp = spectra[h];
    if (!sp) continue;
    info(`${stage}: activation spectrum of ${h}: ${spectrumLine(sp)}`);
    if (isDegenerate(sp)) warn(`${stage}: ${degenerateWarning(h, sp)}`);
  }
}
