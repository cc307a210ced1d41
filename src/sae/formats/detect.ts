import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../io/errors.js';
import { readJson, type LoadedSae, type LoadOptions } from './common.js';
import { isSaelensFolder, readSaelens } from './saelens.js';
import { isSparsifyFolder, readSparsify } from './sparsify.js';

/**
 * Which tool wrote a checkpoint folder, and the one reader for each (this project's own format is read by
 * src/sae/checkpoint.ts, which calls here for the others). Pickle files are refused, never unpickled.
 */

export type ForeignFormat = 'saelens' | 'sparsify';

const PICKLE = /\.(pt|pth|ckpt|bin|pkl|pickle)$/i;

/** The conversion to safetensors, spelled out for a pickle file (dictionary_learning's ae.pt and others). */
export function pickleRefusal(path: string): UserError {
  const isAe = /(^|[\\/])ae\.pt$/.test(path);
  return new UserError(
    `${path}: a PyTorch pickle file. sae-train never unpickles (loading a pickle runs code from the file). Convert it once, ` +
    `in Python with torch and safetensors, on a machine where you trust the file, into a SAELens-layout folder:\n` +
    `  import json, torch; from safetensors.torch import save_file\n` +
    `  sd = torch.load("${path}", map_location="cpu", weights_only=True)\n` +
    (isAe
      ? `  # dictionary_learning AutoEncoder: encoder.weight [d_sae, d_in], encoder.bias [d_sae], decoder.weight [d_in, d_sae], bias [d_in]\n` +
        `  w = {"W_enc": sd["encoder.weight"].T, "b_enc": sd["encoder.bias"], "W_dec": sd["decoder.weight"].T, "b_dec": sd["bias"]}\n`
      : `  # name the tensors W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in] (+ threshold [d_sae] for jumprelu)\n` +
        `  w = {"W_enc": …, "b_enc": …, "W_dec": …, "b_dec": …}\n`) +
    `  save_file({k: v.float().contiguous() for k, v in w.items()}, "OUT/sae_weights.safetensors")\n` +
    `  d_sae, d_in = w["W_dec"].shape\n` +
    `  json.dump({"architecture": "standard", "d_in": d_in, "d_sae": d_sae, "dtype": "float32", "device": "cpu", "apply_b_dec_to_input": True,\n` +
    `             "normalize_activations": "none", "reshape_activations": "none",\n` +
    `             "metadata": {"sae_lens_version": "6.0.0", "model_name": "gpt2", "hook_name": "blocks.N.hook_resid_pre"}}, open("OUT/cfg.json", "w"))\n` +
    `then point the recipe (or \`sae-train import\`) at OUT. Set hook_name to the hook the SAE was trained on ` +
    `(dictionary_learning's submodule output of GPT-2 block N is blocks.N.hook_resid_post).`);
}

/** The pickle weights in a folder (or the path itself), when there is no safetensors file to read instead. */
function pickleIn(path: string): string | undefined {
  if (PICKLE.test(path) && existsSync(path) && statSync(path).isFile()) return path;
  if (!existsSync(path) || !statSync(path).isDirectory()) return undefined;
  if (readdirSync(path).some((f) => f.endsWith('.safetensors'))) return undefined;
  const p = readdirSync(path).find((f) => PICKLE.test(f));
  return p ? join(path, p) : undefined;
}

/** The format of a folder that is not this project's own, or undefined when it is no checkpoint at all. Throws for pickles. */
export function detectForeign(dir: string): ForeignFormat | undefined {
  const pickle = pickleIn(dir);
  if (pickle) throw pickleRefusal(pickle);
  if (isSparsifyFolder(dir)) return 'sparsify';
  if (isSaelensFolder(dir)) return 'saelens';
  return undefined;
}

/** Whether cfg.json says this project's format. */
export function isOwnCfg(dir: string): boolean {
  const p = join(dir, 'cfg.json');
  if (!existsSync(p)) return false;
  try {
    return readJson(p, 'a checkpoint config').format !== undefined;
  } catch {
    return true; // let the own reader say what is wrong with it
  }
}

export function readForeign(dir: string, format: ForeignFormat, opts: LoadOptions): LoadedSae {
  return format === 'sparsify' ? readSparsify(dir, opts) : readSaelens(dir, opts);
}
