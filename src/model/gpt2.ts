/**
 * GPT-2's forward pass in tfjs, one pure function per layer, with TransformerLens-named hook points.
 *
 * Architecture (Radford et al. 2019; Hugging Face GPT2LMHeadModel): token + learned positional embeddings,
 * n_layer pre-LN blocks (x += attn(ln_1(x)); x += mlp(ln_2(x))), causal softmax attention scaled by 1/√d_head,
 * GELU tanh approximation, final LayerNorm, unembedding tied to the token embedding (logits = x·W_Eᵀ).
 * Conv1D weights are [in, out]: y = x·W + b.
 *
 * Hook points (TransformerLens names; shapes with B = batch, T = positions):
 *   hook_embed, hook_pos_embed                [B, T, D]
 *   blocks.{l}.hook_resid_pre                 [B, T, D]   residual stream into block l
 *   blocks.{l}.attn.hook_pattern              [B, H, T(query), T(key)]  softmax attention weights
 *   blocks.{l}.attn.hook_z                    [B, T, H, d_head]  attention-weighted values, per head
 *   blocks.{l}.hook_attn_out                  [B, T, D]
 *   blocks.{l}.hook_resid_mid                 [B, T, D]   resid_pre + attn_out
 *   blocks.{l}.mlp.hook_post                  [B, T, F]   GELU output (MLP neurons)
 *   blocks.{l}.hook_mlp_out                   [B, T, D]
 *   blocks.{l}.hook_resid_post                [B, T, D]   resid_mid + mlp_out (= blocks.{l+1}.hook_resid_pre)
 *   ln_final.hook_normalized                  [B, T, D]   final LayerNorm output (gain and bias applied)
 *
 * How to use it (all in one call, `gpt2Forward(model, tokens, opts)`):
 *  (a) Read hooks: `opts.hooks: ['blocks.6.hook_resid_pre', …]` → `result.hooks[name]`. A read hook's value is
 *      the one the rest of the model sees, i.e. after its replacement if it has one.
 *  (b) Replace hooks: `opts.replace: { [name]: (x) => tf.Tensor }`; the function gets the clean value and must
 *      return a tensor of the same shape, which flows on. Several hooks at once are fine. The function runs
 *      inside the forward's tf.tidy: its intermediates are freed; to keep one (e.g. SAE features for metrics),
 *      tf.keep() it and dispose it yourself.
 *  (c) Start from a residual hook: `opts.start: { hook: 'blocks.6.hook_resid_pre', value }` (value [B, T, D]) runs
 *      only the layers from that point on; `tokens` may then be null. The start hook's own replacement and read
 *      still apply to `value`. Allowed: blocks.{l}.hook_resid_pre | hook_resid_mid | hook_resid_post.
 *  (d) With `opts.logits: false`, the forward stops after the last computation a read hook needs.
 *  (e) Loss: tokenCrossEntropy(logits, tokens) → [B, T-1], meanCrossEntropy(logits, tokens) → scalar.
 *  (f) Differentiable: with trainable params (toParams(…, { trainable: true })) or variables inside a replace
 *      function, tf.variableGrads(() => meanCrossEntropy(gpt2Forward(…).logits!, tokens)) works.
 * The result's tensors belong to the caller (dispose them); nothing else is left allocated.
 */
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core registers op gradients only on request; (f) needs them.
import '../backend/gradients.js';
import { gatherRows } from '../backend/gather.js';
import { batchMatMul, matMul } from '../backend/matmul.js';
import { UserError } from '../io/errors.js';
import type { Gpt2Config } from './config.js';
import { unembedDV, type BlockParams, type Gpt2Model, type LayerNormParams, type LinearParams } from './weights.js';

export type HookFn = (x: tf.Tensor) => tf.Tensor;

export interface ForwardOptions {
  /** Hooks whose values to return. */
  hooks?: readonly string[];
  /** Replacement functions by hook name. */
  replace?: Readonly<Record<string, HookFn>>;
  /** Start from a given value at a residual hook instead of from tokens. */
  start?: { hook: string; value: tf.Tensor };
  /** Compute logits (default true). Without them the forward stops as early as the read hooks allow. */
  logits?: boolean;
}

export interface ForwardResult {
  /** [B, T, V], unless logits: false. */
  logits?: tf.Tensor3D;
  /** The read hooks' values. */
  hooks: Record<string, tf.Tensor>;
}

const BLOCK_HOOKS = ['hook_resid_pre', 'attn.hook_pattern', 'attn.hook_z', 'hook_attn_out', 'hook_resid_mid', 'mlp.hook_post', 'hook_mlp_out', 'hook_resid_post'] as const;
const RESIDUAL_HOOKS = ['hook_resid_pre', 'hook_resid_mid', 'hook_resid_post'];

/** Every hook point of a model, in forward order. */
export function hookNames(c: Pick<Gpt2Config, 'n_layer'>): string[] {
  const names = ['hook_embed', 'hook_pos_embed'];
  for (let l = 0; l < c.n_layer; l++) for (const h of BLOCK_HOOKS) names.push(`blocks.${l}.${h}`);
  names.push('ln_final.hook_normalized');
  return names;
}

function validHooksText(c: Pick<Gpt2Config, 'n_layer'>): string {
  const L = c.n_layer - 1;
  return ['hook_embed', 'hook_pos_embed', ...BLOCK_HOOKS.map((h) => `blocks.{0..${L}}.${h}`), 'ln_final.hook_normalized'].join(', ');
}

/** Throws a UserError naming the unknown hooks and listing the valid ones. `where` says who asked (a recipe key). */
export function checkHookNames(c: Pick<Gpt2Config, 'n_layer'>, names: Iterable<string>, where = 'hook'): void {
  const valid = new Set(hookNames(c));
  const bad = [...names].filter((n) => !valid.has(n));
  if (bad.length)
    throw new UserError(`${where}: unknown hook${bad.length > 1 ? 's' : ''} ${bad.map((b) => `"${b}"`).join(', ')} for a ${c.n_layer}-layer GPT-2. Valid hooks: ${validHooksText(c)}.`);
}

/**
 * Position of a hook in the forward, as a stage index: 0 = embeddings (and blocks.0.hook_resid_pre),
 * 2l+1 = block l's attention half (through hook_resid_mid), 2l+2 = block l's MLP half (through hook_resid_post
 * and blocks.{l+1}.hook_resid_pre), 2L+1 = final LayerNorm and logits.
 */
export function hookStage(c: Pick<Gpt2Config, 'n_layer'>, name: string): number {
  if (name === 'hook_embed' || name === 'hook_pos_embed') return 0;
  if (name === 'ln_final.hook_normalized') return 2 * c.n_layer + 1;
  const m = /^blocks\.(\d+)\.(.+)$/.exec(name);
  if (!m) throw new UserError(`unknown hook "${name}"`);
  const l = Number(m[1]);
  const h = m[2];
  if (h === 'hook_resid_pre') return 2 * l;
  if (['attn.hook_pattern', 'attn.hook_z', 'hook_attn_out', 'hook_resid_mid'].includes(h)) return 2 * l + 1;
  return 2 * l + 2;
}

/** The block a hook belongs to (-1 for the embeddings, n_layer for ln_final). */
export function hookLayer(c: Pick<Gpt2Config, 'n_layer'>, name: string): number {
  const m = /^blocks\.(\d+)\./.exec(name);
  if (m) return Number(m[1]);
  return name === 'ln_final.hook_normalized' ? c.n_layer : -1;
}

/** Floats per token at a hook (d_in of an SAE there); throws for hook_pattern, which is not per-token. */
export function hookWidth(c: Gpt2Config, name: string): number {
  checkHookNames(c, [name]);
  if (name.endsWith('attn.hook_pattern'))
    throw new UserError(`hook "${name}" holds attention patterns [batch, head, query, key], not one vector per token; choose a residual, attn_out, mlp_out, hook_z or mlp.hook_post hook.`);
  if (name.endsWith('mlp.hook_post')) return c.n_inner;
  return c.n_embd;
}

// ---- layers: pure functions, x2d [N, D] with N = B·T rows ----

/** LayerNorm over the last axis: (x − μ)/√(σ² + ε)·w + b. */
export function layerNorm(x: tf.Tensor, p: LayerNormParams, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), p.w), p.b);
  });
}

/** y = x·W + b. xND [N, in] → [N, out]. */
export function linear(xND: tf.Tensor2D, p: LinearParams): tf.Tensor2D {
  return tf.tidy(() => tf.add(matMul(xND, p.w), p.b));
}

/** GELU, tanh approximation (GPT-2's "gelu_new"): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
    return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
  });
}

/** Additive causal mask [T, T]: 0 where key ≤ query, −1e10 above the diagonal (exp underflows to exactly 0). */
function causalMask(T: number): tf.Tensor2D {
  return tf.tidy(() => tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([T, T]), -1, 0)), -1e10) as tf.Tensor2D);
}

type Emit = (name: string, x: tf.Tensor) => tf.Tensor;

/**
 * Causal multi-head self-attention with hooks. xBTD is ln_1's output [B, T, D] → attn_out [B, T, D].
 * Emits attn.hook_pattern [B, H, T, T] and attn.hook_z [B, T, H, dh].
 */
function attention(xBTD: tf.Tensor3D, p: BlockParams, c: Gpt2Config, l: number, emit: Emit): tf.Tensor3D {
  const [B, T, D] = xBTD.shape;
  const H = c.n_head, dh = D / H;
  const qkv = linear(tf.reshape(xBTD, [B * T, D]), p.qkv); // [BT, 3D]
  const [q, k, v] = tf.split(qkv, 3, 1);
  const heads = (t: tf.Tensor, perm: number[], shape: [number, number, number]) => tf.reshape(tf.transpose(tf.reshape(t, [B, T, H, dh]), perm), shape) as tf.Tensor3D;
  const qN = heads(q, [0, 2, 1, 3], [B * H, T, dh]);
  const kTN = heads(k, [0, 2, 3, 1], [B * H, dh, T]); // keys pre-transposed: no transposed matmul
  const vN = heads(v, [0, 2, 1, 3], [B * H, T, dh]);
  const scores = tf.add(tf.mul(batchMatMul(qN, kTN), 1 / Math.sqrt(dh)), causalMask(T)); // [BH, T, T]
  const pattern = emit(`blocks.${l}.attn.hook_pattern`, tf.reshape(tf.softmax(scores), [B, H, T, T]));
  const zN = batchMatMul(tf.reshape(pattern, [B * H, T, T]) as tf.Tensor3D, vN); // [BH, T, dh]
  const z = emit(`blocks.${l}.attn.hook_z`, tf.transpose(tf.reshape(zN, [B, H, T, dh]), [0, 2, 1, 3])); // [B, T, H, dh]
  return tf.reshape(linear(tf.reshape(z, [B * T, D]) as tf.Tensor2D, p.attnOut), [B, T, D]);
}

/** MLP: GELU(x·W_fc + b)·W_proj + b. xBTD is ln_2's output → mlp_out [B, T, D]; emits mlp.hook_post. */
function mlp(xBTD: tf.Tensor3D, p: BlockParams, l: number, emit: Emit): tf.Tensor3D {
  const [B, T, D] = xBTD.shape;
  const pre = linear(tf.reshape(xBTD, [B * T, D]), p.fc);
  const post = emit(`blocks.${l}.mlp.hook_post`, tf.reshape(geluTanh(pre), [B, T, pre.shape[1]]));
  return tf.reshape(linear(tf.reshape(post, [B * T, pre.shape[1]]), p.mlpOut), [B, T, D]);
}

function toTokenTensor(tokens: tf.Tensor2D | number[][], c: Gpt2Config): tf.Tensor2D {
  if (!Array.isArray(tokens)) return tokens.dtype === 'int32' ? tokens : tf.cast(tokens, 'int32');
  for (const row of tokens)
    for (const t of row)
      if (!Number.isInteger(t) || t < 0 || t >= c.vocab_size) throw new UserError(`token id ${t} is outside the model's vocabulary (0..${c.vocab_size - 1}).`);
  return tf.tensor2d(tokens, undefined, 'int32');
}

/**
 * The forward pass; see the top of this file for (a)–(f). tokens [B, T] int32 (or number[][]), T ≤ n_positions.
 * Throws a UserError for unknown hooks (listing the valid ones) and for T > n_positions.
 */
export function gpt2Forward(model: Gpt2Model, tokens: tf.Tensor2D | number[][] | null, opts: ForwardOptions = {}): ForwardResult {
  const c = model.config, p = model.params;
  const L = c.n_layer;
  const read = new Set(opts.hooks ?? []);
  const replace = opts.replace ?? {};
  checkHookNames(c, [...read, ...Object.keys(replace), ...(opts.start ? [opts.start.hook] : [])]);
  const wantLogits = opts.logits ?? true;
  const lastStage = wantLogits ? 2 * L + 1 : Math.max(-1, ...[...read].map((h) => hookStage(c, h)));

  // Where the run begins: the first stage to compute, and the hooks emitted at the start point itself.
  let firstStage = 0;
  const startEmits: string[] = [];
  if (opts.start) {
    const m = /^blocks\.(\d+)\.(hook_resid_pre|hook_resid_mid|hook_resid_post)$/.exec(opts.start.hook);
    if (!m) throw new UserError(`start hook "${opts.start.hook}" is not a residual-stream hook; start from blocks.{l}.${RESIDUAL_HOOKS.join(' | ')}.`);
    firstStage = hookStage(c, opts.start.hook) + 1;
    startEmits.push(opts.start.hook);
    if (m[2] === 'hook_resid_post' && Number(m[1]) + 1 < L) startEmits.push(`blocks.${Number(m[1]) + 1}.hook_resid_pre`);
    const before = [...read, ...Object.keys(replace)].filter((h) => hookStage(c, h) < firstStage && !startEmits.includes(h));
    if (before.length) throw new UserError(`hooks ${before.join(', ')} come before the start hook ${opts.start.hook}, so they are never computed; run the full forward for them.`);
  }

  return tf.tidy((): tf.TensorContainer => {
    const out: Record<string, tf.Tensor> = {};
    // Each stage runs in its own tidy, so a forward holds one stage's intermediates at a time (not all layers').
    let stageOut: Record<string, tf.Tensor> = {};
    const emit: Emit = (name, x) => {
      let v = x;
      const fn = replace[name];
      if (fn) {
        v = fn(x);
        if (!tf.util.arraysEqual(v.shape, x.shape))
          throw new Error(`replacement for hook ${name} returned shape [${v.shape}], expected [${x.shape}]`);
      }
      if (read.has(name)) stageOut[name] = tf.clone(v); // a distinct handle per name (no data copy)
      return v;
    };
    const stage = (f: () => tf.Tensor3D): tf.Tensor3D => {
      const { r, o } = tf.tidy(() => {
        stageOut = {};
        return { r: f(), o: stageOut };
      });
      Object.assign(out, o);
      return r;
    };
    const done = (s: number) => !wantLogits && s >= lastStage;
    const result = (): tf.TensorContainer => ({ hooks: out });

    let resid: tf.Tensor3D;
    let B: number, T: number;
    if (opts.start) {
      const v = opts.start.value;
      if (v.rank !== 3 || v.shape[2] !== c.n_embd) throw new UserError(`start value for ${opts.start.hook} has shape [${v.shape}], expected [batch, positions, ${c.n_embd}].`);
      [B, T] = v.shape as [number, number, number];
      if (T > c.n_positions) throw new UserError(`${T} positions exceed the model's n_positions (${c.n_positions}).`);
      resid = stage(() => startEmits.reduce((x, name) => emit(name, x) as tf.Tensor3D, tf.clone(v) as tf.Tensor3D));
      if (!wantLogits && lastStage < firstStage) return result();
    } else {
      if (!tokens) throw new Error('gpt2Forward: tokens are required unless opts.start is given');
      const tok = toTokenTensor(tokens, c);
      [B, T] = tok.shape;
      if (T > c.n_positions) throw new UserError(`sequence of ${T} tokens exceeds the model's n_positions (${c.n_positions}); use a context_size of at most ${c.n_positions}.`);
      if (lastStage < 0) return result();
      resid = stage(() => {
        const embed = emit('hook_embed', tf.reshape(gatherRows(p.wte, tf.reshape(tok, [B * T])), [B, T, c.n_embd]));
        const posTD = tf.reshape(tf.slice(p.wpe, [0, 0], [T, c.n_embd]), [1, T, c.n_embd]);
        // [B, T, D] as TransformerLens has it, materialised only when someone looks (a broadcast add is cheaper).
        const watched = read.has('hook_pos_embed') || 'hook_pos_embed' in replace;
        const pos = watched ? emit('hook_pos_embed', tf.broadcastTo(posTD, [B, T, c.n_embd])) : posTD;
        return emit('blocks.0.hook_resid_pre', tf.add(embed, pos)) as tf.Tensor3D;
      });
      if (done(0)) return result();
    }
    const eps = c.layer_norm_epsilon;
    for (let s = Math.max(1, firstStage); s <= 2 * L; s++) {
      const l = (s - 1) >> 1;
      const blk = p.blocks[l];
      const x = resid;
      resid = stage(() => {
        if (s % 2 === 1) {
          const attnOut = emit(`blocks.${l}.hook_attn_out`, attention(layerNorm(x, blk.ln1, eps) as tf.Tensor3D, blk, c, l, emit));
          return emit(`blocks.${l}.hook_resid_mid`, tf.add(x, attnOut)) as tf.Tensor3D;
        }
        const mlpOut = emit(`blocks.${l}.hook_mlp_out`, mlp(layerNorm(x, blk.ln2, eps) as tf.Tensor3D, blk, l, emit));
        const post = emit(`blocks.${l}.hook_resid_post`, tf.add(x, mlpOut)) as tf.Tensor3D;
        return l + 1 < L ? (emit(`blocks.${l + 1}.hook_resid_pre`, post) as tf.Tensor3D) : post;
      });
      if (done(s)) return result();
    }
    const final = stage(() => emit('ln_final.hook_normalized', layerNorm(resid, p.lnF, eps)) as tf.Tensor3D);
    if (!wantLogits) return result();
    const x2 = tf.reshape(final, [B * T, c.n_embd]) as tf.Tensor2D;
    let logits: tf.Tensor2D = matMul(x2, unembedDV(p));
    if (p.lmHead?.b) logits = tf.add(logits, p.lmHead.b);
    return { logits: tf.reshape(logits, [B, T, logits.shape[1]]), hooks: out };
  }) as unknown as ForwardResult;
}

/**
 * Rough peak bytes of one forward of B sequences of T tokens (float32): parameters, one stage's
 * intermediates (the forward frees each stage's temporaries before the next), the logits when asked for,
 * and `readFloatsPerToken` floats per token of read hooks. For refusing runs that would overflow the wasm heap.
 */
export function forwardBytes(c: Gpt2Config, B: number, T: number, opts: { logits?: boolean; readFloatsPerToken?: number } = {}): number {
  const D = c.n_embd, F = c.n_inner, H = c.n_head;
  const params = (c.vocab_size + c.n_positions) * D + c.n_layer * (4 * D * D + 2 * D * F + 9 * D + F);
  const stage = B * T * Math.max(12 * D + 4 * H * T, 4 * D + 8 * F);
  const logits = opts.logits ?? true ? 3 * B * T * c.vocab_size + c.vocab_size * D : 0;
  return 4 * (params + stage + logits + B * T * (2 * D + (opts.readFloatsPerToken ?? 0)));
}

/**
 * Next-token cross-entropy per position: logitsBTV [B, T, V], tokensBT [B, T] → [B, T−1], where entry t is
 * −log softmax(logits[:, t])[tokens[:, t+1]], via logsumexp (max-shifted, stable).
 */
export function tokenCrossEntropy(logitsBTV: tf.Tensor3D, tokensBT: tf.Tensor2D | number[][]): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, T, V] = logitsBTV.shape;
    const tok = Array.isArray(tokensBT) ? tf.tensor2d(tokensBT, undefined, 'int32') : tf.cast(tokensBT, 'int32');
    const N = B * (T - 1);
    const lg = tf.reshape(tf.slice(logitsBTV, [0, 0, 0], [B, T - 1, V]), [N, V]);
    const targets = tf.reshape(tf.slice(tok, [0, 1], [B, T - 1]), [N]);
    const flatIdx: tf.Tensor1D = tf.add(tf.mul(tf.range(0, N, 1, 'int32'), tf.scalar(V, 'int32')), targets);
    const picked = tf.reshape(gatherRows(tf.reshape(lg, [N * V, 1]), flatIdx), [N]);
    return tf.reshape(tf.sub(tf.logSumExp(lg, -1), picked), [B, T - 1]) as tf.Tensor2D;
  });
}

/** Mean next-token cross-entropy (nats) over all B·(T−1) predicted positions. */
export function meanCrossEntropy(logitsBTV: tf.Tensor3D, tokensBT: tf.Tensor2D | number[][]): tf.Scalar {
  return tf.tidy(() => tf.mean(tokenCrossEntropy(logitsBTV, tokensBT)) as tf.Scalar);
}
