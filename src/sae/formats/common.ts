import { readFileSync } from 'node:fs';
import { UserError, fsError } from '../../io/errors.js';
import { hookLayer } from '../../model/gpt2.js';
import { CHECKPOINT_FORMAT, type SaeCfg } from '../cfg.js';
import type { EncoderSpec } from '../encoder.js';
import type { SaeWeights } from '../weights.js';
import { CREATED_BY } from '../../version.js';

/** What a checkpoint of any format loads into: this project's cfg and weights (+ encoder description). */
export interface LoadedSae {
  cfg: SaeCfg;
  weights: SaeWeights;
}

/** Options a recipe can give for folders that do not say everything. */
export interface LoadOptions {
  /** The hook the SAE reads (sparsify folders do not record it). */
  hookName?: string;
}


export function readJson(path: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw fsError(err, path, `read ${what}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new UserError(`${path}: not valid JSON.`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new UserError(`${path}: expected a JSON object (${what}).`);
  return v as Record<string, unknown>;
}

/** A positive integer key, or a UserError naming the file and key. */
export function posIntKey(cfg: Record<string, unknown>, key: string, file: string): number {
  const v = cfg[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new UserError(`${file}: key "${key}" must be a positive integer (got ${JSON.stringify(v)}).`);
  return v;
}

/** [rows, cols] row-major → [cols, rows] row-major. */
export function transpose(aRC: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(aRC.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = aRC[r * cols + c];
  return out;
}

/** The cfg of an imported SAE: what the source says, null where it records no training provenance. */
export function importedCfg(a: {
  dir: string; format: string; dIn: number; dSae: number; hookName: string; modelName: string; encoder: EncoderSpec;
  normalize: 'none' | 'constant_norm_rescale' | 'layer_norm'; seed?: number; contextSize?: number | null; prependBos?: boolean;
  /** SAELens' model_from_pretrained_kwargs, when the source says it (src/sae/model-processing.ts). */
  processing?: Record<string, unknown>;
  datasetPath?: unknown;
  trainingVersion?: string | null;
  extra?: Record<string, unknown>;
}): SaeCfg {
  return {
    format: CHECKPOINT_FORMAT,
    architecture: a.encoder.architecture,
    ...(a.encoder.k !== undefined ? { k: a.encoder.k } : {}),
    run_name: a.dir.replace(/[\\/]+$/, '').split(/[\\/]/).pop() ?? a.dir,
    d_in: a.dIn,
    d_sae: a.dSae,
    hook_name: a.hookName,
    hook_layer: hookLayer({ n_layer: -1 }, a.hookName),
    model_name: a.modelName,
    seed: a.seed ?? 0,
    l1_coefficient: null,
    lr: null,
    tokens: null,
    batch_size: null,
    apply_b_dec_to_input: a.encoder.applyBDecToInput,
    normalize_activations: a.normalize,
    training_normalization: 'folded into the weights by the source tool, if any',
    activation_scale: 1,
    decoder: null,
    backend: null,
    dtype: 'float32',
    context_size: a.contextSize ?? null,
    ...(a.prependBos !== undefined ? { prepend_bos: a.prependBos } : {}),
    cache_manifest_sha256: null,
    parent: null,
    // SAELens reads these from a flat cfg.json into its metadata (a run folder loads in SAELens as it is)
    ...(a.processing ? { model_from_pretrained_kwargs: a.processing } : {}),
    dataset_path: a.datasetPath ?? null,
    sae_lens_training_version: a.trainingVersion ?? null,
    imported_from: { format: a.format, source: a.dir, ...a.extra },
    created_by: CREATED_BY,
  };
}

/** Tensors of a file that must all be there with these shapes; names the file, the tensor and the cfg keys on failure. */
export function requireTensors(
  path: string, tensors: Record<string, { shape: number[]; data: Float32Array }>, want: Record<string, number[]>, why: string,
): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const [k, shape] of Object.entries(want)) {
    const t = tensors[k];
    if (!t) throw new UserError(`${path}: missing tensor "${k}" (this layout needs ${Object.keys(want).join(', ')}).`);
    if (t.shape.join(',') !== shape.join(',')) throw new UserError(`${path}: tensor "${k}" has shape [${t.shape}], but ${why} needs [${shape}].`);
    out[k] = t.data;
  }
  return out;
}
