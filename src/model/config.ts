import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError, fsError } from '../io/errors.js';

/**
 * A GPT-2 family model's shape, as Hugging Face's config.json names it
 * (gpt2, gpt2-medium/large/xl, distilgpt2, and tiny test models alike).
 */
export interface Gpt2Config {
  n_layer: number;
  n_head: number;
  n_embd: number;
  n_positions: number;
  vocab_size: number;
  layer_norm_epsilon: number;
  /** MLP width; Hugging Face's n_inner, 4·n_embd when null. */
  n_inner: number;
  /** Token id of <|endoftext|>, used as BOS and document separator (50256 for GPT-2). */
  bos_token_id: number;
}

/** The GELU variants that are the tanh approximation GPT-2 was trained with. */
const TANH_GELUS = ['gelu_new', 'gelu_pytorch_tanh', 'gelu_fast'];

/** Validates a parsed config.json; `file` names it in errors. */
export function parseGpt2Config(json: unknown, file: string): Gpt2Config {
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw new UserError(`${file}: expected a JSON object with n_layer, n_head, n_embd, n_positions, vocab_size (a Hugging Face GPT-2 config.json).`);
  const c = json as Record<string, unknown>;
  if (c.model_type !== undefined && c.model_type !== 'gpt2')
    throw new UserError(`${file}: model_type is "${String(c.model_type)}"; sae-train runs GPT-2 family models only (model_type "gpt2").`);
  const problems: string[] = [];
  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      problems.push(`"${key}" must be a positive integer (got ${v === undefined ? 'nothing' : JSON.stringify(v)})`);
      return 1;
    }
    return v;
  };
  const n_layer = int('n_layer');
  const n_head = int('n_head');
  const n_embd = int('n_embd');
  const n_positions = int('n_positions', c.n_ctx as number | undefined);
  const vocab_size = int('vocab_size');
  const n_inner = c.n_inner === null || c.n_inner === undefined ? 4 * n_embd : int('n_inner');
  const bos_token_id = int('bos_token_id', 50256);
  const eps = c.layer_norm_epsilon ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0)) problems.push(`"layer_norm_epsilon" must be a positive number (got ${JSON.stringify(eps)})`);
  if (problems.length === 0 && n_embd % n_head !== 0) problems.push(`"n_embd" (${n_embd}) must be divisible by "n_head" (${n_head})`);
  const act = c.activation_function ?? 'gelu_new';
  if (typeof act !== 'string' || !TANH_GELUS.includes(act))
    problems.push(`"activation_function" is ${JSON.stringify(act)}; supported: ${TANH_GELUS.join(', ')} (GPT-2's tanh-approximate GELU)`);
  if (c.scale_attn_by_inverse_layer_idx === true) problems.push(`"scale_attn_by_inverse_layer_idx": true is not supported`);
  if (c.scale_attn_weights === false) problems.push(`"scale_attn_weights": false is not supported`);
  if (problems.length) throw new UserError(`${file}: ${problems.join('; ')}.`);
  return Object.freeze({ n_layer, n_head, n_embd, n_positions, vocab_size, layer_norm_epsilon: eps as number, n_inner, bos_token_id });
}

/** Reads `<dir>/config.json`. */
export function readGpt2Config(dir: string): Gpt2Config {
  const file = join(dir, 'config.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new UserError(`${file}: not found. A model folder needs config.json and model.safetensors (as in a Hugging Face repo such as https://huggingface.co/gpt2); or set model: to a hub id like gpt2.`);
    throw fsError(err, file, 'read the model config');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${file}: not valid JSON (${(err as Error).message}). Re-download it from the model's Hugging Face repo.`);
  }
  return parseGpt2Config(json, file);
}

/** config.json contents for a config (what Hugging Face's GPT2Config writes, minus training-only keys). */
export function configJson(c: Gpt2Config): Record<string, unknown> {
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    activation_function: 'gelu_new',
    n_layer: c.n_layer,
    n_head: c.n_head,
    n_embd: c.n_embd,
    n_positions: c.n_positions,
    n_ctx: c.n_positions,
    n_inner: c.n_inner === 4 * c.n_embd ? null : c.n_inner,
    vocab_size: c.vocab_size,
    layer_norm_epsilon: c.layer_norm_epsilon,
    bos_token_id: c.bos_token_id,
    eos_token_id: c.bos_token_id,
  };
}
