import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gaussianArray, makeRng } from '../../src/io/rng.js';
import { writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.js';

/**
 * Checkpoint folders written the way other tools write them (keys, tensor names, shapes), for the import tests:
 * SAELens 6.x `SAE.save_model` (cfg.to_dict(): top-level SAE fields + metadata + architecture), SAELens 5.x
 * `SAE.save_model` (flat SAEConfig.to_dict()), sparsify `SparseCoder.save_to_disk` ({**cfg.to_dict(), d_in} +
 * sae.safetensors with the nn.Module's state dict names). Written here independently of src/sae/formats/.
 */

export interface Params {
  dIn: number;
  dSae: number;
  W_enc: Float32Array; // [d_in, d_sae]
  b_enc: Float32Array;
  W_dec: Float32Array; // [d_sae, d_in]
  b_dec: Float32Array;
  threshold: Float32Array;
  scale: Float32Array; // [d_sae], finetuning scaling factor
}

export function randomParams(seed: string, dIn: number, dSae: number): Params {
  const r = makeRng(seed);
  const u = () => Float32Array.from({ length: dSae }, () => 0.5 + r());
  return {
    dIn, dSae,
    W_enc: gaussianArray(r, dIn * dSae, 0.4), b_enc: gaussianArray(r, dSae, 0.2),
    W_dec: gaussianArray(r, dSae * dIn, 0.3), b_dec: gaussianArray(r, dIn, 0.5),
    threshold: Float32Array.from({ length: dSae }, () => 0.3 * r()), scale: u(),
  };
}

const t2 = (data: Float32Array, shape: number[]): TensorToWrite => ({ shape, data });

export interface SaelensV6 {
  architecture: 'standard' | 'jumprelu' | 'topk';
  apply_b_dec_to_input?: boolean;
  normalize_activations?: 'none' | 'expected_average_only_in' | 'constant_norm_rescale' | 'layer_norm';
  k?: number;
  rescale_acts_by_decoder_norm?: boolean;
  hook_name: string;
  /** activation_scaler.json's scaling_factor (what SAELens' trainer saves beside an unfolded checkpoint). */
  scaling_factor?: number;
  /** metadata.model_from_pretrained_kwargs (default {}, what LanguageModelSAERunnerConfig saves by default); null: key absent. */
  model_from_pretrained_kwargs?: Record<string, unknown> | null;
}

export function writeSaelensV6(dir: string, p: Params, o: SaelensV6): void {
  mkdirSync(dir, { recursive: true });
  const cfg: Record<string, unknown> = {
    d_in: p.dIn, d_sae: p.dSae, dtype: 'float32', device: 'cpu',
    apply_b_dec_to_input: o.apply_b_dec_to_input ?? true,
    normalize_activations: o.normalize_activations ?? 'none',
    reshape_activations: 'none',
    metadata: {
      sae_lens_version: '6.18.0', sae_lens_training_version: '6.18.0', model_name: 'gpt2', hook_name: o.hook_name,
      hook_head_index: null, prepend_bos: true, dataset_path: 'monology/pile-uncopyrighted', context_size: 128,
      model_class_name: 'HookedTransformer', exclude_special_tokens: false,
      ...(o.model_from_pretrained_kwargs === null ? {} : { model_from_pretrained_kwargs: o.model_from_pretrained_kwargs ?? {} }),
    },
    ...(o.architecture === 'topk' ? { k: o.k, rescale_acts_by_decoder_norm: o.rescale_acts_by_decoder_norm ?? false } : {}),
    architecture: o.architecture,
  };
  const tensors: Record<string, TensorToWrite> = {
    b_dec: t2(p.b_dec, [p.dIn]), W_dec: t2(p.W_dec, [p.dSae, p.dIn]), W_enc: t2(p.W_enc, [p.dIn, p.dSae]), b_enc: t2(p.b_enc, [p.dSae]),
  };
  if (o.architecture === 'jumprelu') tensors.threshold = t2(p.threshold, [p.dSae]);
  writeSafetensors(join(dir, 'sae_weights.safetensors'), tensors, { format: 'pt' });
  writeFileSync(join(dir, 'cfg.json'), JSON.stringify(cfg));
  if (o.scaling_factor !== undefined) writeFileSync(join(dir, 'activation_scaler.json'), JSON.stringify({ scaling_factor: o.scaling_factor }));
}

export interface SaelensV5 {
  architecture: 'standard' | 'jumprelu' | 'topk';
  activation_fn_str: 'relu' | 'topk';
  k?: number;
  apply_b_dec_to_input: boolean;
  finetuning_scaling_factor: boolean;
  normalize_activations: string | boolean;
  hook_name: string;
}

export function writeSaelensV5(dir: string, p: Params, o: SaelensV5): void {
  mkdirSync(dir, { recursive: true });
  const cfg = {
    architecture: o.architecture, d_in: p.dIn, d_sae: p.dSae, dtype: 'float32', device: 'cpu', model_name: 'gpt2-small',
    hook_name: o.hook_name, hook_layer: Number(/blocks\.(\d+)/.exec(o.hook_name)?.[1] ?? 0), hook_head_index: null,
    activation_fn_str: o.activation_fn_str, activation_fn_kwargs: o.k ? { k: o.k } : {}, apply_b_dec_to_input: o.apply_b_dec_to_input,
    finetuning_scaling_factor: o.finetuning_scaling_factor, sae_lens_training_version: '5.10.7', prepend_bos: true,
    dataset_path: 'Skylion007/openwebtext', dataset_trust_remote_code: true, context_size: 128, normalize_activations: o.normalize_activations,
    neuronpedia_id: null, model_from_pretrained_kwargs: {}, seqpos_slice: [null],
  };
  const tensors: Record<string, TensorToWrite> = {
    W_enc: t2(p.W_enc, [p.dIn, p.dSae]), b_enc: t2(p.b_enc, [p.dSae]), W_dec: t2(p.W_dec, [p.dSae, p.dIn]), b_dec: t2(p.b_dec, [p.dIn]),
  };
  if (o.architecture === 'jumprelu') tensors.threshold = t2(p.threshold, [p.dSae]);
  // Older SAELens files carry the factor as "scaling_factor" (pretrained_sae_loaders.read_sae_components_from_disk renames it).
  if (o.finetuning_scaling_factor) tensors.scaling_factor = t2(p.scale, [p.dSae]);
  writeSafetensors(join(dir, 'sae_weights.safetensors'), tensors, { format: 'pt' });
  writeFileSync(join(dir, 'cfg.json'), JSON.stringify(cfg));
}

/** sparsify: encoder.weight [d_sae, d_in] (nn.Linear), encoder.bias, W_dec [d_sae, d_in], b_dec; cfg without the hook. */
export function writeSparsify(dir: string, p: Params, k: number): void {
  mkdirSync(dir, { recursive: true });
  const encW = new Float32Array(p.dSae * p.dIn);
  for (let i = 0; i < p.dIn; i++) for (let j = 0; j < p.dSae; j++) encW[j * p.dIn + i] = p.W_enc[i * p.dSae + j];
  writeSafetensors(join(dir, 'sae.safetensors'), {
    'encoder.weight': t2(encW, [p.dSae, p.dIn]), 'encoder.bias': t2(p.b_enc, [p.dSae]), W_dec: t2(p.W_dec, [p.dSae, p.dIn]), b_dec: t2(p.b_dec, [p.dIn]),
  }, { format: 'pt' });
  writeFileSync(join(dir, 'cfg.json'), JSON.stringify({
    activation: 'topk', expansion_factor: 32, normalize_decoder: true, num_latents: p.dSae, k, multi_topk: false, skip_connection: false, transcode: false, d_in: p.dIn,
  }));
}
