import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readManifest } from '../activations/manifest.js';
import { UserError } from '../io/errors.js';
import { CREATED_BY } from '../version.js';
import type { SaeCfg } from './cfg.js';

/**
 * What an SAE was trained on, as SAELens' metadata records it: the model's TransformerLens weight processing,
 * the dataset and the training tool (docs/formats.md "Other tools' checkpoints: import and export").
 *
 * Processing: SAELens records it as `metadata.model_from_pretrained_kwargs` and loads
 * the model with `HookedTransformer.from_pretrained_no_processing(**kwargs)` (sae_lens/load_model.py), so a key
 * that is missing means off. This project names the same thing with a label (src/model/processing.ts:
 * "none", "fold_ln", "center_writing_weights", "fold_ln+center_writing_weights").
 */

/** The kwargs SAELens' evals splat into from_pretrained_no_processing. */
export type PretrainedKwargs = Record<string, unknown>;

export const PROCESSING_LABELS = ['none', 'fold_ln', 'center_writing_weights', 'fold_ln+center_writing_weights'] as const;

/**
 * Keys of from_pretrained_no_processing that do not change what an SAE here sees: center_unembed shifts each
 * position's logits by a constant (softmax and CE unchanged); the rest pick devices and dtypes.
 */
const HARMLESS = new Set(['center_unembed', 'n_devices', 'device', 'dtype', 'default_prepend_bos', 'default_padding_side', 'move_to_device', 'first_n_layers', 'trust_remote_code']);

/** The kwargs of a processing label: what `export --format saelens` writes and run folders record. */
export function kwargsOfProcessing(label: string): { fold_ln: boolean; center_writing_weights: boolean; center_unembed: false } {
  return { fold_ln: label.includes('fold_ln'), center_writing_weights: label.includes('center_writing_weights'), center_unembed: false };
}

/** A `--processing` value, checked. */
export function checkProcessingLabel(label: string, what: string): string {
  if (!(PROCESSING_LABELS as readonly string[]).includes(label))
    throw new UserError(`${what}: "${label}" is not a weight processing; give one of ${PROCESSING_LABELS.join(', ')}.`);
  return label;
}

/**
 * The label of model_from_pretrained_kwargs (missing keys off, as from_pretrained_no_processing has them). A
 * processing this project cannot apply (fold_value_biases, refactor_factored_attn_matrices: they change attention
 * hooks) is a UserError naming the file.
 */
export function processingOfKwargs(kw: unknown, where: string): string {
  if (!kw || typeof kw !== 'object' || Array.isArray(kw))
    throw new UserError(`${where}: model_from_pretrained_kwargs must be a mapping (SAELens' evals pass it as **kwargs), got ${JSON.stringify(kw)}.`);
  const o = kw as Record<string, unknown>;
  for (const [k, v] of Object.entries(o)) {
    if (k === 'fold_ln' || k === 'center_writing_weights') {
      if (typeof v !== 'boolean') throw new UserError(`${where}: model_from_pretrained_kwargs.${k} must be true or false, got ${JSON.stringify(v)}.`);
    } else if (!HARMLESS.has(k) && v !== false && v !== null)
      throw new UserError(`${where}: model_from_pretrained_kwargs.${k} = ${JSON.stringify(v)}: sae-train applies only TransformerLens' fold_ln and center_writing_weights, so it cannot run this SAE on the model it was trained on. Evaluate it with SAELens.`);
  }
  const parts = [o.fold_ln === true && 'fold_ln', o.center_writing_weights === true && 'center_writing_weights'].filter(Boolean);
  return parts.length ? parts.join('+') : 'none';
}

/** An SAE's processing and where that was read, or undefined when nothing says. */
export interface SaeProcessing {
  label: string;
  from: string;
}

/**
 * What a checkpoint says about its model's processing: cfg.json's model_from_pretrained_kwargs (run folders
 * trained here since it is recorded, imports whose source said it, finetunes of either), else the manifest of
 * the cache it was trained on when that is still readable, else undefined.
 */
export function saeProcessing(cfg: SaeCfg, dir: string): SaeProcessing | undefined {
  const kw = (cfg as Record<string, unknown>).model_from_pretrained_kwargs;
  if (kw !== undefined && kw !== null) return { label: processingOfKwargs(kw, join(dir, 'cfg.json')), from: 'its cfg.json (model_from_pretrained_kwargs)' };
  if (!cfg.cache || !existsSync(join(cfg.cache, 'manifest.json'))) return undefined;
  try {
    return { label: readManifest(cfg.cache).model.processing, from: `its activation cache ${cfg.cache}` };
  } catch {
    return undefined;
  }
}

/** The processing label of the recipe's harvest settings (what a cache made by this recipe would have). */
export function recipeProcessing(h: { fold_ln?: boolean; center_writing_weights?: boolean } | undefined): string {
  const parts = [h?.fold_ln && 'fold_ln', h?.center_writing_weights && 'center_writing_weights'].filter(Boolean);
  return parts.length ? parts.join('+') : 'none';
}

/** The fix for an SAE whose processing is unknown: say it at import. */
export const STATE_PROCESSING_FIX = 'If it was trained on a processed model, state it once with `sae-train import <folder> --processing <fold_ln|center_writing_weights|fold_ln+center_writing_weights> --out DIR` and use DIR.';

/** manifest.corpus.paths as SAELens' dataset_path: one path, the list of several, null for none (synthetic). */
export function datasetPathOf(paths: readonly string[]): string | string[] | null {
  return paths.length === 0 ? null : paths.length === 1 ? paths[0] : [...paths];
}

/** The SAELens metadata of a checkpoint: what export writes and a run folder records. */
export interface Provenance {
  /** model_from_pretrained_kwargs; undefined when nothing says (then SAELens' evals cannot load the model). */
  kwargs?: PretrainedKwargs;
  /** Where kwargs came from, for messages. */
  kwargsFrom?: string;
  /** The corpus (never the activation cache), or null. */
  datasetPath: unknown;
  /** "sae-train <version>" for SAEs trained here; a SAELens import's own value; null when unknown. */
  trainingVersion: string | null;
}

/**
 * A checkpoint's provenance from its cfg.json, falling back on its cache's manifest for run folders written
 * before cfg.json recorded it; `processing` (a flag) overrides the model's processing.
 */
export function provenanceOf(cfg: SaeCfg, dir: string, processing?: string): Provenance {
  const c = cfg as Record<string, unknown>;
  const imported = cfg.imported_from as Record<string, unknown> | undefined;
  let manifest: ReturnType<typeof readManifest> | undefined;
  try {
    if (cfg.cache && existsSync(join(cfg.cache, 'manifest.json'))) manifest = readManifest(cfg.cache);
  } catch {
    manifest = undefined;
  }
  const p = processing !== undefined ? { label: processing, from: '--processing' } : saeProcessing(cfg, dir);
  const given = c.model_from_pretrained_kwargs as Record<string, unknown> | undefined;
  const kwargs = p && { ...kwargsOfProcessing(p.label), center_unembed: processing === undefined && given?.center_unembed === true ? true : false };
  const trainingVersion = 'sae_lens_training_version' in c ? (c.sae_lens_training_version as string | null)
    : imported ? (typeof imported.sae_lens_training_version === 'string' ? imported.sae_lens_training_version : null) : CREATED_BY;
  return {
    ...(kwargs ? { kwargs: kwargs as PretrainedKwargs, kwargsFrom: p!.from } : {}),
    datasetPath: 'dataset_path' in c ? c.dataset_path : imported ? (imported.dataset_path ?? null) : manifest ? datasetPathOf(manifest.corpus.paths) : null,
    trainingVersion,
  };
}

/** The refusal for an export whose model processing nothing records. */
export function unknownProcessingError(dir: string, cfg: SaeCfg): UserError {
  return new UserError(`${dir}: does not say which TransformerLens weight processing its model had (cfg.json has no model_from_pretrained_kwargs${cfg.cache ? `, and its activation cache ${cfg.cache} is gone` : ''}), ` +
    `which SAELens' evals need (from_pretrained_no_processing(**model_from_pretrained_kwargs)). Say it with --processing: none for raw Hugging Face activations (sae-train's default), ` +
    `or the cache's harvest.fold_ln / center_writing_weights (fold_ln, center_writing_weights, fold_ln+center_writing_weights).`);
}
