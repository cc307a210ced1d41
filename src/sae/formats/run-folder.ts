import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { CFG_FILE, METRICS_FILE, saveCheckpoint, SPARSITY_FILE, WEIGHTS_FILE } from '../checkpoint.js';
import type { ExportSource } from '../exchange.js';
import { unknownProcessingError } from '../provenance.js';

/**
 * `export --format sae-train`: a checkpoint as a run folder of this project with today's cfg.json (docs/formats.md
 * "Checkpoint (run folder)"). A run folder written before cfg.json split normalize_activations (SAELens' runtime
 * norm, "none" for folded weights) from training_normalization said `expected_norm`, which SAELens refuses; read
 * through upgradeCfg and written again, it loads in SAELens as it is, with the provenance SAELens' metadata
 * reads (model_from_pretrained_kwargs, dataset_path, sae_lens_training_version). metrics.jsonl is copied.
 */
export function writeRunFolder(dir: string, s: ExportSource): string[] {
  const p = s.provenance;
  if (!p.kwargs) throw unknownProcessingError(s.dir, s.cfg);
  const cfg = { ...s.cfg, model_from_pretrained_kwargs: p.kwargs, dataset_path: p.datasetPath, sae_lens_training_version: p.trainingVersion };
  const files = [WEIGHTS_FILE, ...(s.sparsity ? [SPARSITY_FILE] : [])];
  if (existsSync(join(s.dir, METRICS_FILE))) {
    copyFileSync(join(s.dir, METRICS_FILE), join(dir, METRICS_FILE));
    files.push(METRICS_FILE);
  }
  saveCheckpoint(dir, cfg, s.weights, s.sparsity);
  return [...files, CFG_FILE];
}
