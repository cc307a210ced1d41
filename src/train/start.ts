import { mkdirSync } from 'node:fs';
import type { Manifest } from '../activations/manifest.js';
import type { ShuffleStream } from '../activations/shuffle.js';
import type { BackendInfo } from '../backend/picker.js';
import type { Run } from '../recipe/expand.js';
import { geometricMedian, initWeights, meanRows } from '../sae/init.js';
import { runCfg, type TrainConfig } from './config.js';
import { newFeatureStats } from './features.js';
import { truncateMetrics } from './metrics.js';
import { expectedNormScale, scaleInPlace } from './normalize.js';
import { SaeRun } from './sae-run.js';

/** Rows of the stream's first window used to estimate the activation scale and b_dec. */
export const INIT_SAMPLE_ROWS = 8192;

/** What every new run of a hook starts from: the activation scale and b_dec (in scaled space). */
export interface HookInit {
  scale: number;
  bDec: Float32Array;
}

/**
 * Scale and b_dec from the first rows of the stream: the same for every run of a hook
 * (and the same whether a run trains alone or in a sweep), computed once per hook.
 */
function hookInit(hook: string, d: number, t: TrainConfig, stream: ShuffleStream): HookInit {
  const sample = stream.peek(INIT_SAMPLE_ROWS)[hook];
  const n = sample.length / d;
  const scale = t.normalize_activations === 'expected_norm' ? expectedNormScale(sample, n, d) : 1;
  scaleInPlace(sample, scale);
  const bDec = t.b_dec_init === 'geometric_median' ? geometricMedian(sample, n, d) : t.b_dec_init === 'mean' ? meanRows(sample, n, d) : new Float32Array(d);
  return { scale, bDec };
}

/** Builds a new run with seeded weights around its hook's b_dec. */
export function startRun(run: Run, dir: string, t: TrainConfig, manifest: Manifest, manifestSha: string, backend: BackendInfo, stream: ShuffleStream, inits: Map<string, HookInit>): SaeRun {
  const d = manifest.d_in;
  if (!inits.has(run.hook)) inits.set(run.hook, hookInit(run.hook, d, t, stream));
  const { scale, bDec } = inits.get(run.hook)!;
  const cfg = runCfg({ run, train: t, manifest, manifestSha, backend, activationScale: scale });
  mkdirSync(dir, { recursive: true });
  truncateMetrics(dir, 0);
  return SaeRun.start(dir, cfg, initWeights(d, run.d_sae, run.seed, bDec, t.decoder === 'unit_norm' ? 1 : 0.1), newFeatureStats(run.d_sae));
}

