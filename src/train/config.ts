import { readFileSync } from 'node:fs';
import { manifestPath, type Manifest } from '../activations/manifest.js';
import { sha256 } from '../activations/shard.js';
import type { BackendInfo } from '../backend/picker.js';
import { fsError } from '../io/errors.js';
import type { Run } from '../recipe/expand.js';
import type { TrainSection } from '../recipe/schema.js';
import { CHECKPOINT_FORMAT, type SaeCfg } from '../sae/checkpoint.js';
import { upgradeCfg } from '../sae/cfg.js';
import { datasetPathOf, kwargsOfProcessing } from '../sae/provenance.js';
import { CREATED_BY } from '../version.js';

export type TrainConfig = TrainSection & { cache: string };

/** sha256 of a cache's manifest.json: identifies the data a run was trained on. */
export function manifestSha256(cacheDir: string): string {
  const p = manifestPath(cacheDir);
  try {
    return sha256(readFileSync(p));
  } catch (err) {
    throw fsError(err, p, 'read the activation cache manifest');
  }
}

/** The layer index in a hook name such as blocks.6.hook_resid_pre; -1 when it names none. */
export function hookLayer(hook: string): number {
  const m = /(?:^|\.)blocks\.(\d+)\./.exec(hook);
  return m ? Number(m[1]) : -1;
}

/**
 * cfg.json of a run (docs/formats.md "Checkpoint (run folder)"): the SAELens-style keys plus every
 * training setting, so that the run can be rebuilt and a folder's identity checked.
 */
export function runCfg(a: { run: Run; train: TrainConfig; manifest: Manifest; manifestSha: string; backend: BackendInfo; activationScale: number }): SaeCfg {
  const { run, train: t, manifest } = a;
  return {
    format: CHECKPOINT_FORMAT,
    architecture: 'standard',
    run_name: run.name,
    d_in: manifest.d_in,
    d_sae: run.d_sae,
    hook_name: run.hook,
    hook_layer: hookLayer(run.hook),
    model_name: manifest.model.name,
    seed: run.seed,
    l1_coefficient: run.l1_coefficient,
    lr: run.lr,
    tokens: t.tokens,
    batch_size: t.batch_size,
    apply_b_dec_to_input: true,
    // SAELens' meaning: what the SAE does to its input at run time. The saved weights are folded, so none;
    // how training scaled the activations is its own key.
    normalize_activations: 'none',
    training_normalization: t.normalize_activations,
    activation_scale: a.activationScale,
    decoder: t.decoder,
    backend: a.backend.name,
    backend_detail: a.backend.detail,
    ...(a.backend.adapter ? { backend_adapter: a.backend.adapter } : {}),
    dtype: 'float32',
    context_size: manifest.context_size,
    prepend_bos: manifest.prepend_bos,
    cache_manifest_sha256: a.manifestSha,
    cache: t.cache,
    // SAELens reads these from a flat cfg.json into its metadata: the model's processing, the corpus, the tool
    model_from_pretrained_kwargs: kwargsOfProcessing(manifest.model.processing),
    dataset_path: datasetPathOf(manifest.corpus.paths),
    sae_lens_training_version: CREATED_BY,
    parent: null,
    b_dec_init: t.b_dec_init,
    l1_warmup_tokens: t.l1_warmup_tokens,
    lr_warmup_tokens: t.lr_warmup_tokens,
    lr_decay_tokens: t.lr_decay_tokens,
    adam_beta1: t.adam_beta1,
    adam_beta2: t.adam_beta2,
    adam_eps: ADAM_EPS,
    grad_clip_norm: t.grad_clip_norm,
    data_seed: t.data_seed,
    shuffle_buffer_tokens: t.shuffle_buffer_tokens,
    dead_window_tokens: t.dead_window_tokens,
    created_by: CREATED_BY,
  };
}

export const ADAM_EPS = 1e-8;

/** The keys that make two runs the same run (settings and data; not the backend, paths or derived values). */
export const IDENTITY_KEYS = [
  'd_in', 'd_sae', 'hook_name', 'model_name', 'seed', 'l1_coefficient', 'lr', 'tokens', 'batch_size',
  'training_normalization', 'decoder', 'b_dec_init', 'l1_warmup_tokens', 'lr_warmup_tokens', 'lr_decay_tokens',
  'adam_beta1', 'adam_beta2', 'grad_clip_norm', 'data_seed', 'shuffle_buffer_tokens', 'cache_manifest_sha256',
] as const;

/** The data a run depends on: when only these differ, the cache changed under the run. */
export const CACHE_KEYS = ['d_in', 'cache_manifest_sha256'] as const;

/** Identity keys on which two configs differ, as "key: a → b". */
export function cfgDifferences(saved: Record<string, unknown>, wanted: Record<string, unknown>): string[] {
  // runs written before training_normalization existed said normalize_activations: expected_norm
  saved = upgradeCfg(saved);
  wanted = upgradeCfg(wanted);
  return IDENTITY_KEYS.filter((k) => JSON.stringify(saved[k]) !== JSON.stringify(wanted[k]))
    .map((k) => `${k}: ${JSON.stringify(saved[k])} → ${JSON.stringify(wanted[k])}`);
}
