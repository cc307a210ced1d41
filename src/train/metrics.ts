import { appendFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { fsError } from '../io/errors.js';
import { METRICS_FILE } from '../sae/checkpoint.js';

/** One line of metrics.jsonl (training-batch statistics, in the normalised space the SAE trains in). */
export interface MetricsLine {
  step: number;
  tokens: number;
  epoch: number;
  loss: number;
  mse: number;
  /** mean_b Σ_i f_bi·w_i before λ */
  sparsity: number;
  /** λ in effect (after warm-up) */
  l1_coefficient: number;
  lr: number;
  l0: number;
  explained_variance: number;
  dead_fraction: number;
}

/** Keeps the lines of metrics.jsonl up to `step` (those a resumed run has not redone); 0 empties it. */
export function truncateMetrics(runDir: string, step: number): void {
  const p = join(runDir, METRICS_FILE);
  if (!existsSync(p)) return;
  if (step === 0) {
    rmSync(p, { force: true });
    return;
  }
  const keep = readFileSync(p, 'utf8').split('\n').filter((l) => {
    try {
      return l.trim() !== '' && (JSON.parse(l) as MetricsLine).step <= step;
    } catch {
      return false; // a line torn by a kill
    }
  });
  writeFileAtomic(p, keep.map((l) => l + '\n').join(''));
}

export function appendMetrics(runDir: string, line: MetricsLine): void {
  const p = join(runDir, METRICS_FILE);
  try {
    appendFileSync(p, JSON.stringify(line) + '\n');
  } catch (err) {
    throw fsError(err, p, 'append training metrics');
  }
}
