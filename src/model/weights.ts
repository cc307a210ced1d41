import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import type { Gpt2Config } from './config.js';

/** A host-side float32 array with its shape (row-major). */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/**
 * GPT-2 weights on the host, keyed by Hugging Face's names without the `transformer.` prefix:
 * `wte.weight` [V, D], `wpe.weight` [P, D], `h.{l}.ln_1.{weight,bias}` [D], `h.{l}.attn.c_attn.{weight [D, 3D], bias}`,
 * `h.{l}.attn.c_proj.{weight [D, D], bias}`, `h.{l}.ln_2.*`, `h.{l}.mlp.c_fc.{weight [D, F], bias}`,
 * `h.{l}.mlp.c_proj.{weight [F, D], bias}`, `ln_f.{weight,bias}`; and, only for an untied unembedding
 * (e.g. after fold_ln), `lm_head.weight` [V, D] and optionally `lm_head.bias` [V].
 * Conv1D weights are [in, out]: y = x·W + b.
 */
export type Gpt2Weights = Record<string, HostTensor>;

/** Every required weight's name and shape for a config. */
export function expectedShapes(c: Gpt2Config): Map<string, number[]> {
  const D = c.n_embd, F = c.n_inner;
  const m = new Map<string, number[]>([['wte.weight', [c.vocab_size, D]], ['wpe.weight', [c.n_positions, D]]]);
  for (let l = 0; l < c.n_layer; l++) {
    const h = `h.${l}.`;
    m.set(h + 'ln_1.weight', [D]).set(h + 'ln_1.bias', [D]);
    m.set(h + 'attn.c_attn.weight', [D, 3 * D]).set(h + 'attn.c_attn.bias', [3 * D]);
    m.set(h + 'attn.c_proj.weight', [D, D]).set(h + 'attn.c_proj.bias', [D]);
    m.set(h + 'ln_2.weight', [D]).set(h + 'ln_2.bias', [D]);
    m.set(h + 'mlp.c_fc.weight', [D, F]).set(h + 'mlp.c_fc.bias', [F]);
    m.set(h + 'mlp.c_proj.weight', [F, D]).set(h + 'mlp.c_proj.bias', [D]);
  }
  m.set('ln_f.weight', [D]).set('ln_f.bias', [D]);
  return m;
}

/**
 * Random weights initialised as Hugging Face's GPT2PreTrainedModel does: N(0, 0.02) for
 * embeddings and Conv1D weights, N(0, 0.02/√(2·n_layer)) for the residual-writing c_proj
 * weights, zero biases, unit LayerNorm gains. Deterministic in `seed`.
 */
export function randomGpt2Weights(c: Gpt2Config, seed = 0, std = 0.02): Gpt2Weights {
  const rng = seedrandom(`gpt2-init-${seed}`);
  const normal = (): number => {
    let u = 0;
    while (u === 0) u = rng();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
  };
  const w: Gpt2Weights = {};
  for (const [name, shape] of expectedShapes(c)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (/ln_[12f]\.weight$/.test(name)) data.fill(1);
    else if (name.endsWith('.weight')) {
      const s = name.endsWith('c_proj.weight') ? std / Math.sqrt(2 * c.n_layer) : std;
      for (let i = 0; i < data.length; i++) data[i] = normal() * s;
    }
    w[name] = { shape, data };
  }
  return w;
}

/** LayerNorm gain and bias, [D] each. */
export interface LayerNormParams {
  w: tf.Tensor1D;
  b: tf.Tensor1D;
}
/** y = x·w + b, w [in, out] (Hugging Face Conv1D layout), b [out]. */
export interface LinearParams {
  w: tf.Tensor2D;
  b: tf.Tensor1D;
}
export interface BlockParams {
  ln1: LayerNormParams;
  /** c_attn: [D, 3D], q|k|v along the output axis. */
  qkv: LinearParams;
  /** attn.c_proj: [D, D]. */
  attnOut: LinearParams;
  ln2: LayerNormParams;
  /** mlp.c_fc: [D, F]. */
  fc: LinearParams;
  /** mlp.c_proj: [F, D]. */
  mlpOut: LinearParams;
}
/** GPT-2 parameters as tensors (or tf.Variables, for training). */
export interface Gpt2Params {
  wte: tf.Tensor2D;
  wpe: tf.Tensor2D;
  blocks: BlockParams[];
  lnF: LayerNormParams;
  /** Untied unembedding: logits = x·wᵀ + b, w [V, D]. Absent: tied to wte (GPT-2's default). */
  lmHead?: { w: tf.Tensor2D; b?: tf.Tensor1D };
}
/** What the forward needs: a config and its parameters. */
export interface Gpt2Model {
  config: Gpt2Config;
  params: Gpt2Params;
}

/**
 * Host weights → tensors. With `trainable`, every parameter is a tf.Variable
 * (named `gpt2/<hf-name>`), so tf.variableGrads / optimizers see them.
 */
export function toParams(c: Gpt2Config, w: Gpt2Weights, opts: { trainable?: boolean } = {}): Gpt2Params {
  const make = <T extends tf.Tensor>(name: string): T => {
    const h = w[name];
    if (!h) throw new Error(`toParams: weight "${name}" is missing`);
    const t = tf.tensor(h.data, h.shape, 'float32');
    if (!opts.trainable) return t as T;
    const v = tf.variable(t, true, `gpt2/${name}/${Math.random().toString(36).slice(2, 8)}`);
    t.dispose();
    return v as unknown as T;
  };
  const ln = (p: string): LayerNormParams => ({ w: make(p + '.weight'), b: make(p + '.bias') });
  const lin = (p: string): LinearParams => ({ w: make(p + '.weight'), b: make(p + '.bias') });
  const blocks: BlockParams[] = [];
  for (let l = 0; l < c.n_layer; l++) {
    const h = `h.${l}.`;
    blocks.push({ ln1: ln(h + 'ln_1'), qkv: lin(h + 'attn.c_attn'), attnOut: lin(h + 'attn.c_proj'), ln2: ln(h + 'ln_2'), fc: lin(h + 'mlp.c_fc'), mlpOut: lin(h + 'mlp.c_proj') });
  }
  const params: Gpt2Params = { wte: make('wte.weight'), wpe: make('wpe.weight'), blocks, lnF: ln('ln_f') };
  if (w['lm_head.weight']) params.lmHead = { w: make('lm_head.weight'), b: w['lm_head.bias'] ? make<tf.Tensor1D>('lm_head.bias') : undefined };
  return params;
}

/** Parameters in Hugging Face name order, for saving and for optimizers' var lists. */
export function namedParams(p: Gpt2Params): [string, tf.Tensor][] {
  const out: [string, tf.Tensor][] = [['wte.weight', p.wte], ['wpe.weight', p.wpe]];
  p.blocks.forEach((b, l) => {
    const h = `h.${l}.`;
    out.push([h + 'ln_1.weight', b.ln1.w], [h + 'ln_1.bias', b.ln1.b], [h + 'attn.c_attn.weight', b.qkv.w], [h + 'attn.c_attn.bias', b.qkv.b],
      [h + 'attn.c_proj.weight', b.attnOut.w], [h + 'attn.c_proj.bias', b.attnOut.b], [h + 'ln_2.weight', b.ln2.w], [h + 'ln_2.bias', b.ln2.b],
      [h + 'mlp.c_fc.weight', b.fc.w], [h + 'mlp.c_fc.bias', b.fc.b], [h + 'mlp.c_proj.weight', b.mlpOut.w], [h + 'mlp.c_proj.bias', b.mlpOut.b]);
  });
  out.push(['ln_f.weight', p.lnF.w], ['ln_f.bias', p.lnF.b]);
  if (p.lmHead) {
    out.push(['lm_head.weight', p.lmHead.w]);
    if (p.lmHead.b) out.push(['lm_head.bias', p.lmHead.b]);
  }
  return out;
}

/** Tensors → host weights (e.g. to save a trained model with writeGpt2Folder). */
export async function paramsToWeights(p: Gpt2Params): Promise<Gpt2Weights> {
  const w: Gpt2Weights = {};
  for (const [name, t] of namedParams(p)) w[name] = { shape: t.shape.slice(), data: Float32Array.from(await t.data()) };
  return w;
}

/** Transposed unembeddings of frozen (non-Variable) parameters, made once per model. */
const unembedCache = new WeakMap<tf.Tensor, tf.Tensor2D>();

/**
 * The unembedding as [D, V] (logits = x·W), tied to wte unless lmHead is set. For frozen parameters the
 * transpose is made once and kept (generation calls the forward once per token); for tf.Variables, whose
 * values change while training, it is recomputed in the caller's scope.
 */
export function unembedDV(p: Gpt2Params): tf.Tensor2D {
  const w = p.lmHead?.w ?? p.wte;
  if (w instanceof tf.Variable) return tf.transpose(w);
  let t = unembedCache.get(w);
  if (!t || t.isDisposed) {
    t = tf.keep(tf.transpose(w));
    unembedCache.set(w, t);
  }
  return t;
}

export function disposeParams(p: Gpt2Params): void {
  const w = p.lmHead?.w ?? p.wte;
  unembedCache.get(w)?.dispose();
  unembedCache.delete(w);
  tf.dispose(namedParams(p).map(([, t]) => t));
}
