import { info, warn } from '../ui/log.js';
import type { ManifestSpectrum } from './cache-spectrum.js';
import { degenerateWarning, isDegenerate, spectrumLine } from './spectrum.js';

/** One console line per hook with its spectrum, and a warning naming each degenerate hook. */
export function logSpectrum(stage: string, s: ManifestSpectrum, hooks: readonly string[] = Object.keys(s.hooks)): void {
  for (const h of hooks) {
    const sp = s.hooks[h];
    if (!sp) continue;
    info(`${stage}: activation spectrum of ${h} (${s.sample_rows.toLocaleString('en-US')} sampled rows): ${spectrumLine(sp)}`);
    if (isDegenerate(sp)) warn(`${stage}: ${degenerateWarning(h, sp)}`);
  }
}
