import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { writeJsonAtomic } from '../../io/atomic.js';
import { UserError } from '../../io/errors.js';
import { readSafetensors, writeSafetensors } from '../../io/safetensors.js';
import type { SaeCfg } from '../cfg.js';
import type { EncoderSpec } from '../encoder.js';
import type { SaeWeights } from '../weights.js';
import { kwargsOfProcessing, type Provenance } from '../provenance.js';
import { importedCfg, posIntKey, readJson, requireTensors, transpose, type LoadedSae, type LoadOptions } from './common.js';

/**
 * sparsify (EleutherAI) folders, one per hookpoint: cfg.json ({activation, expansion_factor, normalize_decoder,
 * num_latents, k, multi_topk, skip_connection, transcode, d_in}) + sae.safetensors (encoder.weight [d_sae, d_in],
 * encoder.bias [d_sae], W_dec [d_sae, d_in], b_dec [d_in]); sparsify/sparse_coder.py SparseCoder.
 *
 * Encode: f = TopK_k(ReLU((x − b_dec)·encoder.weightᵀ + encoder.bias)); decode: x̂ = f·W_dec + b_dec.
 * The hookpoint is the folder's name (a module path of the Hugging Face model, e.g. h.6 for GPT-2: the block's
 * output, i.e. blocks.6.hook_resid_post) and is not in cfg.json: the recipe's hook_names says it, else a
 * GPT-2 block name (h.N, transformer.h.N, layers.N) is read as blocks.N.hook_resid_post.
 */

export const SPARSIFY_WEIGHTS = 'sae.safetensors';

export function isSparsifyFolder(dir: string): boolean {
  return existsSync(join(dir, 'cfg.json')) && existsSync(join(dir, SPARSIFY_WEIGHTS));
}

/** The TransformerLens hook of a sparsify hookpoint folder name on GPT-2, when it is a block's output. */
export function hookOfHookpoint(name: string): string | undefined {
  const m = /^(?:transformer\.|model\.)?(?:h|layers)\.(\d+)$/.exec(name);
  return m ? `blocks.${m[1]}.hook_resid_post` : undefined;
}

export function readSparsify(dir: string, opts: LoadOptions = {}): LoadedSae {
  const cfgPath = join(dir, 'cfg.json');
  const wPath = join(dir, SPARSIFY_WEIGHTS);
  const raw = readJson(cfgPath, 'a sparsify sparse coder config');
  const dIn = posIntKey(raw, 'd_in', cfgPath);
  const k = posIntKey(raw, 'k', cfgPath);
  const numLatents = typeof raw.num_latents === 'number' ? raw.num_latents : 0;
  const expansion = typeof raw.expansion_factor === 'number' ? raw.expansion_factor : 32;
  const dSae = numLatents || dIn * expansion;
  const activation = String(raw.activation ?? 'topk');
  if (activation !== 'topk')
    throw new UserError(`${cfgPath}: activation "${activation}" is not supported (sae-train runs sparsify's topk coders; groupmax is not). Evaluate it with sparsify.`);
  if (raw.transcode === true)
    throw new UserError(`${cfgPath}: transcode is true: this is a transcoder (it predicts one module's output from another's input), not an SAE; sae-train splices SAEs only.`);
  if (raw.skip_connection === true)
    throw new UserError(`${cfgPath}: skip_connection is true (a W_skip term x·W_skipᵀ is added to x̂); sae-train does not run skip connections.`);
  for (const flag of ['signed', 'jumprelu'])
    if (raw[flag] === true) throw new UserError(`${cfgPath}: ${flag} is true: that sparse coder variant is not supported (sae-train runs plain topk coders).`);
  const folder = basename(resolve(dir));
  const hookName = opts.hookName ?? (typeof raw.hook_name === 'string' ? raw.hook_name : undefined) ?? hookOfHookpoint(folder);
  if (!hookName)
    throw new UserError(`${dir}: a sparsify folder does not say which hook it reads (its hookpoint "${folder}" is not a GPT-2 block name). Say it in the recipe, hook_names: { "${dir}": blocks.6.hook_resid_post }, or with --hook-name (import, export).`);

  const { tensors } = readSafetensors(wPath);
  const t = requireTensors(wPath, tensors, { 'encoder.weight': [dSae, dIn], 'encoder.bias': [dSae], W_dec: [dSae, dIn], b_dec: [dIn] },
    `cfg.json (d_in ${dIn}, ${numLatents ? `num_latents ${numLatents}` : `expansion_factor ${expansion}`})`);
  if (tensors.W_skip) throw new UserError(`${wPath}: has W_skip (a skip connection); sae-train does not run skip connections.`);
  const encoder: EncoderSpec = { architecture: 'topk', k, applyBDecToInput: true, inputNorm: 'none' };
  const cfg = importedCfg({
    dir, format: 'sparsify', dIn, dSae, hookName, modelName: typeof raw.model_name === 'string' ? raw.model_name : 'unknown', encoder, normalize: 'none',
    processing: kwargsOfProcessing('none'), // sparsify trains on the Hugging Face model's own activations: nothing processed
    extra: { hookpoint: folder, hook_name_from: opts.hookName ? 'recipe' : raw.hook_name ? 'cfg.json' : 'folder name', normalize_decoder: raw.normalize_decoder ?? null },
  });
  return {
    cfg,
    weights: { dIn, dSae, W_enc: transpose(t['encoder.weight'], dSae, dIn), b_enc: t['encoder.bias'].slice(), W_dec: t.W_dec.slice(), b_dec: t.b_dec.slice(), encoder },
  };
}

/**
 * Writes a TopK SAE as sparsify's SparseCoder.save_to_disk does: cfg.json = {**SparseCoderConfig.to_dict(),
 * d_in} (plus hook_name, which sparsify's from_dict(drop_extra_fields=True) ignores) and sae.safetensors with
 * the module's parameter names. Only what sparsify can run: topk, b_dec subtracted from the input, no runtime norm.
 */
export function writeSparsifyFolder(dir: string, a: { dir: string; cfg: SaeCfg; weights: SaeWeights; provenance: Provenance }): string[] {
  const w = a.weights, e = w.encoder, kw = a.provenance.kwargs;
  // sparsify runs SAEs on the Hugging Face model's own activations
  if (kw && (kw.fold_ln === true || kw.center_writing_weights === true))
    throw new UserError(`${a.dir}: was trained on activations of a TransformerLens-processed model (${a.provenance.kwargsFrom}: fold_ln ${kw.fold_ln}, center_writing_weights ${kw.center_writing_weights}), but sparsify runs SAEs on the unprocessed Hugging Face model. Export it with --format saelens, which records the processing.`);
  if (!e || e.architecture !== 'topk' || !e.applyBDecToInput || e.inputNorm !== 'none')
    throw new UserError(`sparsify runs TopK sparse coders only (f = TopK(ReLU((x − b_dec)·Wᵀ + b))); this SAE is ${e?.architecture ?? 'standard'}` +
      `${e && !e.applyBDecToInput ? ' without apply_b_dec_to_input' : ''}${e && e.inputNorm !== 'none' ? ` with normalize_activations ${e.inputNorm}` : ''}. Export it with --format saelens.`);
  writeSafetensors(join(dir, SPARSIFY_WEIGHTS), {
    'encoder.weight': { shape: [w.dSae, w.dIn], data: transpose(w.W_enc, w.dIn, w.dSae) }, 'encoder.bias': { shape: [w.dSae], data: w.b_enc },
    W_dec: { shape: [w.dSae, w.dIn], data: w.W_dec }, b_dec: { shape: [w.dIn], data: w.b_dec },
  }, { format: 'pt' });
  writeJsonAtomic(join(dir, 'cfg.json'), {
    activation: 'topk', expansion_factor: Math.max(1, Math.round(w.dSae / w.dIn)), normalize_decoder: false, num_latents: w.dSae, k: e.k,
    multi_topk: false, skip_connection: false, transcode: false, d_in: w.dIn, hook_name: a.cfg.hook_name,
  });
  return [SPARSIFY_WEIGHTS, 'cfg.json'];
}
