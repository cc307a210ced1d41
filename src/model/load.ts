import * as tf from '@tensorflow/tfjs-core';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { WASM_SAFE_BYTES, formatBytes } from '../backend/memory.js';
import { writeJsonAtomic } from '../io/atomic.js';
import { UserError } from '../io/errors.js';
import { openSafetensors, writeSafetensors, type SafetensorsFile } from '../io/safetensors.js';
import { configJson, readGpt2Config, type Gpt2Config } from './config.js';
import { resolveModelDir } from './hub.js';
import { processWeights, processingLabel } from './processing.js';
import { expectedShapes, toParams, type Gpt2Model, type Gpt2Weights, type HostTensor } from './weights.js';

/** Buffers some checkpoints carry that are not parameters (the causal mask). */
const IGNORED = /^h\.\d+\.attn\.(bias|masked_bias)$/;

const PICKLE_FILES = ['pytorch_model.bin', 'tf_model.h5', 'flax_model.msgpack', 'model.ckpt.index'];

function safetensorsFiles(dir: string): string[] {
  const single = join(dir, 'model.safetensors');
  if (existsSync(single)) return [single];
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) {
    let map: Record<string, string>;
    try {
      map = JSON.parse(readFileSync(index, 'utf8')).weight_map;
    } catch (err) {
      throw new UserError(`${index}: not a valid safetensors index (${(err as Error).message}). Re-download it.`);
    }
    if (!map || typeof map !== 'object') throw new UserError(`${index}: has no "weight_map". Re-download it.`);
    return [...new Set(Object.values(map))].map((f) => join(dir, f));
  }
  const other = existsSync(dir) ? readdirSync(dir).filter((f) => PICKLE_FILES.includes(f) || /\.(bin|pt|pth|ckpt)$/.test(f)) : [];
  if (other.length)
    throw new UserError(`${dir}: has ${other.join(', ')} but no model.safetensors. sae-train never unpickles .bin/.pt weights (loading a pickle can run arbitrary code). ` +
      `Get model.safetensors instead: download it from the model's Hugging Face page (https://huggingface.co/<id>/blob/main/model.safetensors; gpt2, gpt2-medium, gpt2-large, gpt2-xl and distilgpt2 all have one), ` +
      `or convert it once in Python: python -c "from transformers import GPT2LMHeadModel as M; M.from_pretrained('${dir}').save_pretrained('${dir}', safe_serialization=True)"`);
  throw new UserError(`${single}: not found. A model folder needs config.json and model.safetensors (as in a Hugging Face repo); or set model: to a hub id such as gpt2.`);
}

function sameData(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Reads and checks a GPT-2 checkpoint's weights (model.safetensors, or shards listed in
 * model.safetensors.index.json). Accepts names with or without the `transformer.` prefix, ignores the
 * attn.bias/masked_bias buffers, drops lm_head.weight when it equals wte (tied) and keeps it otherwise.
 * Every missing, unexpected or wrongly shaped tensor is listed in one UserError.
 */
export function readGpt2Weights(dir: string, c: Gpt2Config): Gpt2Weights {
  const files = safetensorsFiles(dir);
  const expected = expectedShapes(c);
  const optional = new Map<string, number[]>([['lm_head.weight', [c.vocab_size, c.n_embd]], ['lm_head.bias', [c.vocab_size]]]);
  const problems: string[] = [];
  const weights: Gpt2Weights = {};
  const opened: SafetensorsFile[] = [];
  const seen = new Set<string>();
  try {
    for (const f of files) opened.push(openSafetensors(f));
    for (const st of opened) {
      for (const [raw, info] of st.tensors) {
        const name = raw.startsWith('transformer.') ? raw.slice('transformer.'.length) : raw;
        if (IGNORED.test(name)) continue;
        const shape = expected.get(name) ?? optional.get(name);
        if (!shape) {
          problems.push(`unexpected tensor "${raw}"`);
          continue;
        }
        if (seen.has(name)) {
          problems.push(`tensor "${name}" appears twice`);
          continue;
        }
        seen.add(name);
        if (!tf.util.arraysEqual(info.shape, shape)) {
          problems.push(`"${raw}" has shape [${info.shape}], config.json implies [${shape}]`);
          continue;
        }
        weights[name] = { shape, data: st.readF32(raw) };
      }
    }
  } finally {
    for (const st of opened) st.close();
  }
  for (const name of expected.keys()) if (!seen.has(name)) problems.push(`missing tensor "${name}"`);
  if (problems.length) {
    const shown = problems.slice(0, 12).join('; ') + (problems.length > 12 ? `; … and ${problems.length - 12} more` : '');
    throw new UserError(`${files.length === 1 ? files[0] : dir}: does not match config.json (${c.n_layer} layers, n_embd ${c.n_embd}, vocab ${c.vocab_size}): ${shown}. Use the config.json that came with these weights.`);
  }
  const lm = weights['lm_head.weight'];
  if (lm && sameData(lm.data, weights['wte.weight'].data) && !weights['lm_head.bias']) delete weights['lm_head.weight'];
  return weights;
}

/** Reads a local Hugging Face GPT-2 folder (config.json + model.safetensors). */
export function readGpt2Folder(dir: string): { config: Gpt2Config; weights: Gpt2Weights } {
  if (!existsSync(dir)) throw new UserError(`${dir}: model folder not found. Give a folder with config.json and model.safetensors, or a hub id such as gpt2, gpt2-medium, distilgpt2.`);
  if (!statSync(dir).isDirectory()) throw new UserError(`${dir}: expected a model folder (config.json + model.safetensors), got a file.`);
  const config = readGpt2Config(dir);
  return { config, weights: readGpt2Weights(dir, config) };
}

/**
 * Writes a model in Hugging Face layout (config.json + model.safetensors), atomically; `dtype` F16 stores the
 * weights as float16 (half the size; read back as float32).
 */
export function writeGpt2Folder(dir: string, config: Gpt2Config, weights: Gpt2Weights, opts: { dtype?: 'F32' | 'F16' } = {}): void {
  const tensors: Record<string, HostTensor & { dtype?: 'F32' | 'F16' }> = {};
  for (const [name, t] of Object.entries(weights)) tensors[name] = { ...t, dtype: opts.dtype ?? 'F32' };
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  writeJsonAtomic(join(dir, 'config.json'), configJson(config));
}

/** Bytes the parameters take as float32 tensors. */
export function paramBytes(c: Gpt2Config): number {
  let n = 0;
  for (const s of expectedShapes(c).values()) n += s.reduce((a, b) => a * b, 1);
  return n * 4;
}

export interface LoadOptions {
  /** Make every parameter a tf.Variable (for training the model itself). */
  trainable?: boolean;
  /** TransformerLens weight processing (src/model/processing.ts); both default off. */
  foldLn?: boolean;
  centerWritingWeights?: boolean;
}

/** A loaded model: config, tensors, and where it came from. */
export interface LoadedGpt2 extends Gpt2Model {
  /** Short name for manifests and logs: the hub id, or the folder's name. */
  name: string;
  /** The local folder the weights were read from. */
  dir: string;
  /** Weight processing applied: "none", "fold_ln", "center_writing_weights" or "fold_ln+center_writing_weights". */
  processing: string;
}

/** Refuses, before allocating, a model whose parameters would not fit the wasm heap. */
function checkFits(spec: string, c: Gpt2Config): void {
  const bytes = paramBytes(c);
  if (tf.getBackend() === 'wasm' && bytes > WASM_SAFE_BYTES * 0.8)
    throw new UserError(`${spec}: the model's parameters take ${formatBytes(bytes)} as float32, too much for the wasm backend's ~4 GiB heap (with room for activations). Use a smaller model (gpt2, gpt2-medium) or the tensorflow backend (@tensorflow/tfjs-node).`);
}

/**
 * Loads a GPT-2 into tensors from `spec`: a local Hugging Face folder (config.json + model.safetensors) or a
 * hub id (gpt2, gpt2-medium, distilgpt2, …) downloaded once into the cache (src/model/hub.ts).
 */
export async function loadGpt2(spec: string, opts: LoadOptions = {}): Promise<LoadedGpt2> {
  const dir = await resolveModelDir(spec);
  const config = readGpt2Config(dir);
  checkFits(spec, config);
  const { weights } = readGpt2Folder(dir);
  const proc = { foldLn: !!opts.foldLn, centerWritingWeights: !!opts.centerWritingWeights };
  const params = toParams(config, processWeights(config, weights, proc), opts);
  return { config, params, name: existsSync(spec) ? basename(resolve(spec)) : spec, dir, processing: processingLabel(proc) };
}
