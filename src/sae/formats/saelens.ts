import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../../io/atomic.js';
import { UserError } from '../../io/errors.js';
import { readSafetensors, writeSafetensors, type TensorToWrite } from '../../io/safetensors.js';
import type { SaeCfg } from '../cfg.js';
import { STANDARD_ENCODER, type EncoderSpec } from '../encoder.js';
import type { SaeWeights } from '../weights.js';
import { kwargsOfProcessing, processingOfKwargs, unknownProcessingError, type Provenance } from '../provenance.js';
import { importedCfg, posIntKey, readJson, requireTensors, type LoadedSae, type LoadOptions } from './common.js';

/**
 * SAELens folders: cfg.json + sae_weights.safetensors (W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in],
 * b_dec [d_in], threshold [d_sae] for jumprelu), optionally sparsity.safetensors and activation_scaler.json.
 *
 * cfg.json comes in two layouts (sae_lens/loading/pretrained_sae_loaders.py handle_config_defaulting):
 * - v6 (metadata.sae_lens_version ≥ 6): `architecture`, d_in, d_sae, dtype, device, apply_b_dec_to_input,
 *   normalize_activations, reshape_activations, k (topk), rescale_acts_by_decoder_norm (topk), and
 *   `metadata: {model_name, hook_name, hook_head_index, prepend_bos, context_size, dataset_path, …}`;
 * - before 6 (flat): the same keys at the top level with hook_name (or hook_point), hook_layer, model_name,
 *   context_size, prepend_bos, activation_fn_str ("relu" | "topk" with activation_fn_kwargs.k),
 *   finetuning_scaling_factor, normalize_activations possibly a bool (true = expected_average_only_in).
 *
 * Encode/decode as SAELens does (src/sae/encoder.ts), with what can be folded folded at load:
 * - expected_average_only_in: x·s with s from activation_scaler.json (what SAELens' trainer saves beside an
 *   unfolded checkpoint) folded as SAELens' fold_activation_norm_scaling_factor does (W_enc·s, W_dec/s, b_dec/s);
 * - a `scaling_factor` tensor (finetuning_scaling_factor: f ↦ f·s before W_dec) folded into W_dec's rows;
 *   all ones is dropped, as SAELens drops it;
 * - topk with rescale_acts_by_decoder_norm: pre·‖W_dec,i‖ then f/‖W_dec,i‖ before W_dec, folded into
 *   W_enc, b_enc and W_dec as SAELens' _fold_norm_topk does;
 * - constant_norm_rescale and layer_norm depend on each token's x: applied at run time.
 */

export const SAELENS_WEIGHTS = 'sae_weights.safetensors';
export const SAELENS_SCALER = 'activation_scaler.json';
export const SAELENS_NORMS = ['none', 'expected_average_only_in', 'constant_norm_rescale', 'layer_norm'] as const;
const SUPPORTED = ['standard', 'jumprelu', 'topk'];

/** Whether cfg.json is in SAELens' v6 layout (metadata.sae_lens_version ≥ 6.0.0-rc.0, as SAELens decides). */
export function isV6(cfg: Record<string, unknown>): boolean {
  const meta = (cfg.metadata ?? {}) as Record<string, unknown>;
  const v = String(cfg.sae_lens_version ?? meta.sae_lens_version ?? '');
  const major = /^v?(\d+)\./.exec(v);
  return !!major && Number(major[1]) >= 6;
}

export function isSaelensFolder(dir: string): boolean {
  return existsSync(join(dir, 'cfg.json')) && existsSync(join(dir, SAELENS_WEIGHTS));
}

export function readSaelens(dir: string, opts: LoadOptions = {}): LoadedSae {
  const cfgPath = join(dir, 'cfg.json');
  const wPath = join(dir, SAELENS_WEIGHTS);
  const raw = readJson(cfgPath, 'a SAELens SAE config');
  const v6 = isV6(raw);
  // Before 6.0 every key is at the top level (old names renamed as SAELens renames them); in 6.x the
  // model-side keys live under metadata.
  const flat: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(raw)) flat[{ hook_point: 'hook_name', hook_point_head_index: 'hook_head_index', activation_fn_str: 'activation_fn' }[k] ?? k] = val;
  const meta = v6 ? ((raw.metadata ?? {}) as Record<string, unknown>) : flat;
  const dIn = posIntKey(raw, 'd_in', cfgPath), dSae = posIntKey(raw, 'd_sae', cfgPath);

  let arch = String(flat.architecture ?? 'standard');
  let k: number | undefined = typeof flat.k === 'number' ? flat.k : undefined;
  const actFn = String(flat.activation_fn ?? 'relu');
  if (!v6) {
    const kw = (flat.activation_fn_kwargs ?? {}) as Record<string, unknown>;
    if (actFn === 'topk' && typeof kw.k === 'number') {
      arch = 'topk';
      k = kw.k;
    } else if (actFn !== 'relu' && !(arch === 'topk' && actFn === 'topk')) {
      throw new UserError(`${cfgPath}: activation_fn "${actFn}" is not supported (sae-train runs relu, jumprelu and topk SAEs). Convert the SAE to one of those, or evaluate it with SAELens.`);
    }
  }
  if (!SUPPORTED.includes(arch))
    throw new UserError(`${cfgPath}: architecture "${arch}" is not supported: sae-train loads ${SUPPORTED.join(', ')} SAEs (SAELens, sparsify) and refuses others rather than run them wrongly. Convert it to one of those, or evaluate it with SAELens.`);
  if (arch === 'topk') {
    if (k === undefined && v6) k = 100; // TopKSAEConfig's default
    if (k === undefined || !Number.isInteger(k) || k <= 0) throw new UserError(`${cfgPath}: a topk SAE needs a positive integer k (key "k"${v6 ? '' : ' or activation_fn_kwargs.k'}).`);
  }
  let norm = flat.normalize_activations;
  if (typeof norm === 'boolean') norm = norm ? 'expected_average_only_in' : 'none';
  if (norm === null || norm === undefined) norm = 'none';
  if (!(SAELENS_NORMS as readonly unknown[]).includes(norm))
    throw new UserError(`${cfgPath}: normalize_activations "${String(norm)}" is not one of SAELens' values (${SAELENS_NORMS.join(', ')}).`);
  const apply = flat.apply_b_dec_to_input === undefined ? true : flat.apply_b_dec_to_input === true;
  const hookName = opts.hookName ?? (typeof meta.hook_name === 'string' ? meta.hook_name : undefined);
  if (!hookName) throw new UserError(`${cfgPath}: no hook_name${v6 ? ' in metadata' : ''}. Say which hook the SAE reads in the recipe, hook_names: { "${dir}": blocks.8.hook_resid_pre }, or with --hook-name (import, export).`);
  if (meta.hook_head_index !== undefined && meta.hook_head_index !== null)
    throw new UserError(`${cfgPath}: hook_head_index ${String(meta.hook_head_index)}: SAEs on a single attention head are not supported (sae-train splices whole hooks).`);

  const { tensors } = readSafetensors(wPath);
  const want: Record<string, number[]> = { W_enc: [dIn, dSae], b_enc: [dSae], W_dec: [dSae, dIn], b_dec: [dIn] };
  if (arch === 'jumprelu') want.threshold = [dSae];
  const why = `cfg.json (d_in ${dIn}, d_sae ${dSae}, ${arch})`;
  const t = requireTensors(wPath, tensors, want, why);
  // SAELens loads with load_state_dict (strict): any other tensor is an error there too, except the scaling factor.
  const scaleName = ['scaling_factor', 'finetuning_scaling_factor'].find((n) => tensors[n]);
  const extra = Object.keys(tensors).filter((n) => !(n in want) && n !== scaleName);
  if (extra.length) throw new UserError(`${wPath}: unexpected tensor(s) ${extra.join(', ')} for a SAELens ${arch} SAE. Is this another architecture (gated, transcoder)? sae-train loads ${SUPPORTED.join(', ')}.`);
  const W_enc = t.W_enc.slice(), b_enc = t.b_enc.slice(), W_dec = t.W_dec.slice(), b_dec = t.b_dec.slice();
  const folded: string[] = [];

  if (scaleName) {
    const s = tensors[scaleName];
    if (s.shape.join(',') !== String(dSae)) throw new UserError(`${wPath}: tensor "${scaleName}" has shape [${s.shape}], expected [${dSae}].`);
    if (!s.data.every((v) => v === 1)) {
      if (scaleName === 'scaling_factor' && flat.finetuning_scaling_factor !== true)
        throw new UserError(`${wPath}: has a scaling_factor that is not all ones, but cfg.json's finetuning_scaling_factor is not true (SAELens refuses this too). Set finetuning_scaling_factor: true if the factor is meant to scale the features.`);
      for (let i = 0; i < dSae; i++) for (let j = 0; j < dIn; j++) W_dec[i * dIn + j] *= s.data[i];
      folded.push('finetuning_scaling_factor → W_dec');
    }
  }
  if (norm === 'expected_average_only_in') {
    const sPath = join(dir, 'activation_scaler.json');
    const s = existsSync(sPath) ? readJson(sPath, "SAELens' activation scaler").scaling_factor : undefined;
    if (typeof s !== 'number' || !(s > 0))
      throw new UserError(`${cfgPath}: normalize_activations is expected_average_only_in but the folder has no scaling factor (${sPath} with {"scaling_factor": …}). ` +
        `SAELens folds the factor when training ends and then writes "none"; a release lists it as norm_scaling_factor in SAELens' pretrained_saes.yaml. ` +
        `Write that value into ${sPath}, or load a final checkpoint.`);
    for (let i = 0; i < W_enc.length; i++) W_enc[i] *= s;
    for (let i = 0; i < W_dec.length; i++) W_dec[i] /= s;
    for (let i = 0; i < b_dec.length; i++) b_dec[i] /= s;
    folded.push(`expected_average_only_in scaling factor ${s}`);
  }
  if (arch === 'topk' && flat.rescale_acts_by_decoder_norm === true) {
    for (let i = 0; i < dSae; i++) {
      let sq = 0;
      for (let j = 0; j < dIn; j++) sq += W_dec[i * dIn + j] ** 2;
      const n = Math.sqrt(sq);
      b_enc[i] *= n;
      for (let r = 0; r < dIn; r++) W_enc[r * dSae + i] *= n;
      for (let j = 0; j < dIn; j++) W_dec[i * dIn + j] = n > 0 ? W_dec[i * dIn + j] / n : 0;
    }
    folded.push('rescale_acts_by_decoder_norm');
  }
  const runtime = norm === 'constant_norm_rescale' || norm === 'layer_norm' ? norm : 'none';
  // The model's TransformerLens processing, as SAELens loads it (from_pretrained_no_processing(**kwargs)); absent: unknown.
  const kw = meta.model_from_pretrained_kwargs;
  const processing = kw === undefined || kw === null ? undefined
    : { ...kwargsOfProcessing(processingOfKwargs(kw, cfgPath)), center_unembed: (kw as Record<string, unknown>).center_unembed === true };
  const encoder: EncoderSpec = { architecture: arch as EncoderSpec['architecture'], k: arch === 'topk' ? k : undefined, threshold: arch === 'jumprelu' ? t.threshold.slice() : undefined, applyBDecToInput: apply, inputNorm: runtime };
  const cfg = importedCfg({
    dir, format: v6 ? 'saelens/v6' : 'saelens/v5', dIn, dSae, hookName, modelName: String(meta.model_name ?? 'unknown'), encoder, normalize: runtime,
    seed: typeof flat.seed === 'number' && Number.isInteger(flat.seed) ? flat.seed : undefined,
    contextSize: typeof meta.context_size === 'number' ? meta.context_size : null,
    prependBos: typeof meta.prepend_bos === 'boolean' ? meta.prepend_bos : undefined,
    processing, datasetPath: meta.dataset_path,
    trainingVersion: typeof meta.sae_lens_training_version === 'string' ? meta.sae_lens_training_version : null,
    extra: {
      normalize_activations: norm, folded, dataset_path: meta.dataset_path ?? null,
      sae_lens_training_version: meta.sae_lens_training_version ?? null, ...(opts.hookName ? { hook_name_from: 'recipe' } : {}),
    },
  });
  return { cfg, weights: { dIn, dSae, W_enc, b_enc, W_dec, b_dec, encoder } };
}

/** The SAELens config-format version written: 6.x layout (metadata block); SAELens reads older layouts differently. */
export const SAELENS_FORMAT_VERSION = '6.0.0';

/**
 * Writes an SAE as SAELens 6.x saves one (`SAE.save_model`): cfg.json = SAEConfig.to_dict() (top-level SAE
 * fields, `architecture`, `metadata`) and sae_weights.safetensors with the state-dict names. The weights act
 * on raw activations, so normalize_activations is "none" unless the SAE normalises each token at run time.
 * metadata.sae_lens_version says which config layout this is (SAELens reads cfg files without it as pre-6
 * and drops the metadata block). SAELens fills a missing sae_lens_training_version with its own version
 * (SAEMetadata), so it is always written: "sae-train <version>" for SAEs trained here. SAELens' evals load the
 * model with from_pretrained_no_processing(**model_from_pretrained_kwargs), so that is required.
 */
export function writeSaelensFolder(dir: string, a: { dir: string; cfg: SaeCfg; weights: SaeWeights; sparsity?: Float32Array; provenance: Provenance; exportedBy: string }): string[] {
  const { cfg, weights: w, provenance: p } = a;
  if (!p.kwargs) throw unknownProcessingError(a.dir, cfg);
  const e = w.encoder ?? STANDARD_ENCODER;
  const out: Record<string, unknown> = {
    d_in: w.dIn, d_sae: w.dSae, dtype: 'float32', device: 'cpu',
    apply_b_dec_to_input: e.applyBDecToInput,
    normalize_activations: e.inputNorm,
    reshape_activations: cfg.hook_name.endsWith('hook_z') ? 'hook_z' : 'none',
    metadata: {
      sae_lens_version: SAELENS_FORMAT_VERSION,
      model_name: cfg.model_name, hook_name: cfg.hook_name, hook_head_index: null,
      prepend_bos: cfg.prepend_bos ?? true, context_size: cfg.context_size ?? null, dataset_path: p.datasetPath,
      model_from_pretrained_kwargs: p.kwargs, sae_lens_training_version: p.trainingVersion, exported_by: a.exportedBy,
    },
    ...(e.architecture === 'topk' ? { k: e.k, rescale_acts_by_decoder_norm: false } : {}),
    architecture: e.architecture,
  };
  const tensors: Record<string, TensorToWrite> = {
    W_enc: { shape: [w.dIn, w.dSae], data: w.W_enc }, b_enc: { shape: [w.dSae], data: w.b_enc },
    W_dec: { shape: [w.dSae, w.dIn], data: w.W_dec }, b_dec: { shape: [w.dIn], data: w.b_dec },
  };
  if (e.architecture === 'jumprelu') tensors.threshold = { shape: [w.dSae], data: e.threshold! };
  writeSafetensors(join(dir, SAELENS_WEIGHTS), tensors, { format: 'pt' });
  const files = [SAELENS_WEIGHTS];
  if (a.sparsity) {
    writeSafetensors(join(dir, 'sparsity.safetensors'), { sparsity: { shape: [w.dSae], data: a.sparsity } }, { format: 'pt' });
    files.push('sparsity.safetensors');
  }
  writeJsonAtomic(join(dir, 'cfg.json'), out);
  return [...files, 'cfg.json'];
}
