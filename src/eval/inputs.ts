import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { FeaturesConfig } from '../features/config.js';

/**
 * What a run's eval results depend on (eval_inputs.json beside metrics.json): a second `sae-train eval`
 * reuses a run's results when this matches, and redoes them when it does not.
 */
export const EVAL_FORMAT = 'sae-train.eval/v1';
export const INPUTS_FILE = 'eval_inputs.json';

export interface ModelFingerprint {
  spec: string;
  /** TransformerLens weight processing applied at load ("none", "fold_ln", …). */
  processing?: string;
  /** config.json and every *.safetensors file by name, size and mtime (hashing GB of weights per run would cost more than it saves). */
  files: { name: string; size: number; mtimeMs: number }[];
}

export function modelFingerprint(spec: string, dir: string): ModelFingerprint {
  const files = existsSync(dir)
    ? readdirSync(dir).filter((f) => f === 'config.json' || f.endsWith('.safetensors') || f.endsWith('.index.json')).sort()
    : [];
  return { spec, files: files.map((name) => { const s = statSync(join(dir, name)); return { name, size: s.size, mtimeMs: Math.round(s.mtimeMs) }; }) };
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** sha256 of the eval token windows (their int32 bytes, in order). */
export function windowsSha256(windows: readonly Int32Array[]): string {
  const h = createHash('sha256');
  for (const w of windows) h.update(new Uint8Array(w.buffer, w.byteOffset, w.byteLength));
  return h.digest('hex');
}

/** Settings shared by every run of one eval invocation. */
export interface SharedInputs {
  model: ModelFingerprint;
  windows_sha256: string;
  windows: number;
  context_size: number;
  topk: number[];
  drop_lowest: number[];
  samples: { prompts: string[]; max_new_tokens: number; temperature: number; seed: number };
  reference_models: string[];
  /** eval.features resolved (src/features/config.ts); null when off */
  features?: FeaturesConfig | null;
}

export interface RunInputs extends SharedInputs {
  format: typeof EVAL_FORMAT;
  checkpoint: string;
  weights_sha256: string;
}

export function runInputs(shared: SharedInputs, checkpointDir: string, weightsSha256: string): RunInputs {
  return { format: EVAL_FORMAT, checkpoint: resolve(checkpointDir), weights_sha256: weightsSha256, ...shared };
}

/** The top-level keys whose values differ (for "inputs changed: …" messages). */
export function changedKeys(a: object, b: object): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => JSON.stringify((a as Record<string, unknown>)[k]) !== JSON.stringify((b as Record<string, unknown>)[k]));
}

/** The stored inputs of a run folder, or undefined when absent or unreadable. */
export function readRunInputs(runDir: string): RunInputs | undefined {
  try {
    return JSON.parse(readFileSync(join(runDir, INPUTS_FILE), 'utf8')) as RunInputs;
  } catch {
    return undefined;
  }
}
