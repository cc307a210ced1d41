import * as tf from '@tensorflow/tfjs-core';
import { matMul } from '../backend/matmul.js';
import { formatBytes, WASM_SAFE_BYTES } from '../backend/memory.js';
import { currentBackend } from '../backend/picker.js';
import { UserError } from '../io/errors.js';
import { info } from '../ui/log.js';
import { hookLayer, hookWidth } from '../model/gpt2.js';
import { corpusWindows } from '../model/corpus.js';
import { paramBytes } from '../model/load.js';
import { gpt2Tokenizer } from '../model/tokenizer.js';
import type { Gpt2Model } from '../model/weights.js';
import type { Gpt2Config } from '../model/config.js';
import { encode, type SaeTensors } from '../sae/forward.js';
import { cloneWeights } from '../sae/weights.js';
import { adamLoop, type BatchSource, type SourceSpec } from './adam_loop.js';
import { cleanForward, disposeUnembed, keepFirstPosition, meanCe, meanKl, prepareUnembed, splicedLogits, type Unembed } from './kl.js';
import type { MethodContext, MethodResult } from './method-types.js';

/**
 * `decoder_kl`: retrain W_dec so that GPT-2 with the SAE spliced in at its
 * hook predicts what the clean model predicts: minimise the mean
 * KL(clean ‖ spliced) of the next-token distributions, with gradients flowing
 * from the logits back through the layers after the hook into W_dec. The
 * encoder (and b_dec, the encoder's input centring) stays frozen, so L0 is
 * unchanged. Like `decoder`, the parameter is s·W_dec (training units).
 *
 * Data: token windows of finetune.corpus (default harvest.corpus: the text the
 * SAE's activations came from; never eval.corpus, which eval holds out), cut
 * as the cache was (its manifest's context_size and prepend_bos unless
 * finetune.context_size says otherwise). The first finetune.kl_heldout_windows
 * windows are held out to measure KL and CE before/after; fitting cycles over
 * the windows after them, in corpus order, finetune.kl_batch_size per step.
 */

/** A batch of token windows: tokens [batch, T] row-major. */
export interface WindowBatch {
  tokens: Int32Array;
  batch: number;
  T: number;
}

/** How the SAE meets the model. */
export interface KlSplice {
  model: Gpt2Model;
  hook: string;
  /** The parent's tensors (encoder and b_dec used; W_dec replaced by the parameter). */
  p: SaeTensors;
  /** cfg.activation_scale: the parameter is s·W_dec. */
  scale: number;
  /** Leave position 0 clean (the cache excluded BOS activations, so the SAE never saw them). */
  keepFirst: boolean;
  /** The model's unembedding, prepared once (kl.ts prepareUnembed). */
  u: Unembed;
}

/**
 * Peak bytes of one decoder_kl step, fitted to tf.profile measurements of GPT-2 small (hook blocks.6, 128 and
 * 256 positions per step: 1.84 and 2.51 GiB): the model's parameters twice (its matmuls save a copy of each
 * weight for the backward), the SAE's decoder and Adam state, and per position ~16 vocabulary-wide float32
 * tensors (logits, log-probabilities, KL terms, their gradients) plus what autodiff keeps of each layer
 * after the hook (GELU's intermediates dominate).
 */
export function decoderKlBytes(c: Gpt2Config, layersAfterHook: number, batch: number, T: number, dSae: number): number {
  const perPosition = 16 * c.vocab_size * 4 + layersAfterHook * (60 * c.n_embd + 16 * c.n_inner) * 4;
  return 2 * paramBytes(c) + 10 * dSae * c.n_embd * 4 + batch * T * perPosition;
}

/**
 * The clean pass of a batch (no gradient): log-probabilities, the hook's value, the SAE's features on it, and
 * the clean logits when `keepLogits` (else freed at once: vocabulary-wide tensors dominate a step's memory).
 */
function cleanPass(k: KlSplice, tok: tf.Tensor2D, keepLogits = false): { lp: tf.Tensor3D; h: tf.Tensor3D; f: tf.Tensor2D; clean?: tf.Tensor3D } {
  const { logits, hookValue: h } = cleanForward(k.model, k.u, k.hook, tok);
  const [B, T, D] = h.shape;
  const lp = tf.tidy(() => tf.logSoftmax(logits)) as tf.Tensor3D;
  if (!keepLogits) logits.dispose();
  return { lp, h, f: encode(tf.reshape(h, [B * T, D]), k.p), clean: keepLogits ? logits : undefined };
}

/** The spliced forward's logits for a decoder parameter Wn = s·W_dec [d_sae, d_in]. */
function splice(k: KlSplice, tok: tf.Tensor2D, h: tf.Tensor3D, f: tf.Tensor2D, Wn: tf.Tensor): tf.Tensor3D {
  const [B, T, D] = h.shape;
  const xhat = tf.reshape(tf.add(tf.div(matMul(f, Wn as tf.Tensor2D), k.scale), k.p.b_dec), [B, T, D]) as tf.Tensor3D;
  return splicedLogits(k.model, k.u, k.hook, tok, k.keepFirst ? keepFirstPosition(xhat, h) : xhat);
}

/** Mean KL(clean ‖ spliced) of a batch and its gradient with respect to Wn. Call inside a tidy. */
export function klLossAndGrad(k: KlSplice, b: WindowBatch, Wn: tf.Tensor): { loss: tf.Scalar; grad: tf.Tensor } {
  const tok = tf.tensor2d(b.tokens, [b.batch, b.T], 'int32');
  const { lp, h, f } = cleanPass(k, tok);
  const { value, grad } = tf.valueAndGrad((W: tf.Tensor) => meanKl(lp, splice(k, tok, h, f, W)))(Wn);
  return { loss: value, grad };
}

export interface HeldoutKl {
  windows: number;
  kl_div: number;
  ce_clean: number;
  ce_spliced: number;
}

/** KL and CE over held-out windows for the decoder parameter Wn (averaged over batches of equal size). */
export async function heldoutKl(k: KlSplice, windows: Int32Array[], batch: number, Wn: Float32Array): Promise<HeldoutKl> {
  const T = windows[0].length;
  const [dSae, dIn] = [k.p.W_enc.shape[1], k.p.W_enc.shape[0]];
  const W = tf.tensor2d(Wn, [dSae, dIn]);
  let kl = 0, ceC = 0, ceS = 0, n = 0;
  try {
    for (let i = 0; i < windows.length; i += batch) {
      const part = windows.slice(i, i + batch);
      const flat = new Int32Array(part.length * T);
      part.forEach((w, j) => flat.set(w, j * T));
      const v = tf.tidy(() => {
        const tok = tf.tensor2d(flat, [part.length, T], 'int32');
        const { lp, h, f, clean } = cleanPass(k, tok, true);
        const spliced = splice(k, tok, h, f, W);
        return tf.stack([meanKl(lp, spliced), meanCe(clean!, tok), meanCe(spliced, tok)]);
      });
      const [a, b, c] = (await v.data()) as Float32Array;
      v.dispose();
      kl += a * part.length;
      ceC += b * part.length;
      ceS += c * part.length;
      n += part.length;
    }
  } finally {
    W.dispose();
  }
  return { windows: n, kl_div: kl / n, ce_clean: ceC / n, ce_spliced: ceS / n };
}

/**
 * Windows [skip, …) of a window stream, `batch` per step, cycling (epochs)
 * when it runs out. Resumable: the state is (epoch, windows consumed in it);
 * reopening replays the stream to there.
 */
export function windowSource(windows: () => Iterator<Int32Array>, skip: number, batch: number, T: number, what: string): SourceSpec<WindowBatch> {
  return {
    tokensPerStep: batch * T,
    open(state): BatchSource<WindowBatch> {
      const st = (state as { epoch: number; index: number } | undefined) ?? { epoch: 0, index: 0 };
      let epoch = st.epoch, index = 0;
      let it = windows();
      const pull = (): Int32Array | undefined => {
        const r = it.next();
        return r.done ? undefined : r.value;
      };
      const restart = () => {
        it = windows();
        for (let i = 0; i < skip; i++) if (!pull()) break;
        index = 0;
      };
      restart();
      for (; index < st.index; index++) if (!pull()) throw new UserError(`${what}: the saved position (window ${st.index}) is past the corpus end; the corpus changed. Run with --fresh.`);
      return {
        next() {
          const tokens = new Int32Array(batch * T);
          for (let j = 0; j < batch; j++) {
            let w = pull();
            if (!w) {
              if (index === 0) throw new UserError(`${what}: no windows left after the ${skip} held out. Add text, or lower finetune.kl_heldout_windows or context_size.`);
              epoch++;
              restart();
              w = pull()!;
            }
            tokens.set(w, j * T);
            index++;
          }
          return { tokens, batch, T };
        },
        state: () => ({ epoch, index }),
        get epochs() {
          return epoch + 1;
        },
      };
    },
  };
}

/**
 * The decoder_kl fit on a given window stream (the method reads the corpus;
 * tests pass windows of the fixture model's vocabulary).
 */
export async function fitDecoderKl(ctx: MethodContext, model: Gpt2Model, windows: () => Iterator<Int32Array>, T: number, keepFirst: boolean): Promise<MethodResult> {
  const { parent, section, p } = ctx;
  const { hook_name: hook, d_in: dIn, d_sae: dSae } = parent.cfg;
  if (hookWidth(model.config, hook) !== dIn)
    throw new UserError(`${parent.dir}: the SAE has d_in ${dIn} but ${hook} of the model is ${hookWidth(model.config, hook)} wide. Set model: to the model the SAE was trained on.`);
  if (T > model.config.n_positions)
    throw new UserError(`finetune.context_size: ${T} exceeds the model's n_positions (${model.config.n_positions}).`);
  const B = section.kl_batch_size;
  const bytes = decoderKlBytes(model.config, model.config.n_layer - Math.max(0, hookLayer(model.config, hook)), B, T, dSae);
  if (currentBackend().name === 'wasm' && bytes > WASM_SAFE_BYTES)
    throw new UserError(`decoder_kl of ${parent.dir} needs about ${formatBytes(bytes)} of tensor memory at kl_batch_size ${B} × context ${T} (vocabulary ${model.config.vocab_size}), more than the ${formatBytes(WASM_SAFE_BYTES)} the wasm backend holds safely. Lower finetune.kl_batch_size or finetune.context_size.`);
  const H = section.kl_heldout_windows;
  const held: Int32Array[] = [];
  for (const it = windows(); held.length < H;) {
    const r = it.next();
    if (r.done) break;
    held.push(r.value);
  }
  if (held.length < H) throw new UserError(`finetune.kl_heldout_windows: the corpus has only ${held.length} windows of ${T} tokens, not enough to hold out ${H} and fit on the rest. Add text or lower kl_heldout_windows.`);
  const k: KlSplice = { model, hook, p, scale: parent.cfg.activation_scale, keepFirst, u: prepareUnembed(model) };
  try {
    return await klFit(ctx, k, windows, held, T);
  } finally {
    disposeUnembed(k.u);
  }
}

/** Held-out KL before, Adam on the fitting windows, held-out KL after. */
async function klFit(ctx: MethodContext, k: KlSplice, windows: () => Iterator<Int32Array>, held: Int32Array[], T: number): Promise<MethodResult> {
  const { parent, section } = ctx;
  const { d_in: dIn, d_sae: dSae } = parent.cfg;
  const [s, B, H] = [k.scale, section.kl_batch_size, held.length];
  const W0 = Float32Array.from(parent.weights.W_dec, (w) => w * s);
  const before = await heldoutKl(k, held, B, W0);
  info(`  held-out (${H} windows): KL(clean ‖ spliced) ${before.kl_div.toPrecision(4)} nats, CE clean ${before.ce_clean.toFixed(4)}, spliced ${before.ce_spliced.toFixed(4)}`);
  const res = await adamLoop<WindowBatch>(ctx, {
    name: 'decoder_kl',
    shape: [dSae, dIn],
    init: () => W0,
    lossAndGrad: (b, W) => klLossAndGrad(k, b, W),
    show: (loss) => ({ kl: loss }),
  }, windowSource(windows, H, B, T, 'finetune.corpus'));
  const after = await heldoutKl(k, held, B, res.param);
  info(`  after: KL ${after.kl_div.toPrecision(4)} nats, CE spliced ${after.ce_spliced.toFixed(4)}`);
  const weights = cloneWeights(parent.weights);
  for (let i = 0; i < res.param.length; i++) weights.W_dec[i] = res.param[i] / s;
  return {
    weights,
    fit: {
      tokens: res.steps * B * T, ...res.hyper, windows_per_step: B, context_size: T, steps: res.steps, epochs: res.epochs,
      activation_scale: s, trained: ['W_dec'], frozen: ['W_enc', 'b_enc', 'b_dec'], loss_curve: res.lossCurve, splice_keeps_position_0: k.keepFirst,
      heldout_downstream: { source: `the first ${H} windows of finetune.corpus (never fitted on)`, before, after },
    },
  };
}

/** The method: model from recipe.model, windows from finetune.corpus (default harvest.corpus). */
export async function decoderKlMethod(ctx: MethodContext): Promise<MethodResult> {
  const { recipe, section, cache } = ctx;
  if (!ctx.model) throw new UserError(`${recipe.path}: decoder_kl needs the model: set model: to the GPT-2 the SAE was trained on (a local Hugging Face folder).`);
  const model = await ctx.model();
  const corpus = section.corpus ?? recipe.harvest?.corpus;
  if (!corpus?.length)
    throw new UserError(`${recipe.path}: decoder_kl needs text: set finetune.corpus (the training text, e.g. harvest.corpus; not eval.corpus, which eval holds out).`);
  const evalCorpus = recipe.eval?.corpus ?? [];
  if (corpus.some((c) => evalCorpus.includes(c)))
    throw new UserError(`${recipe.path}: finetune.corpus includes eval.corpus (${corpus.filter((c) => evalCorpus.includes(c)).join(', ')}): decoder_kl would be fitted on the text eval holds out. Use the training text (harvest.corpus).`);
  const T = section.context_size ?? cache.manifest.context_size;
  const prependBos = cache.manifest.prepend_bos;
  const tok = gpt2Tokenizer();
  if (model.config.vocab_size < tok.vocabSize)
    throw new UserError(`${recipe.path}: model ${recipe.model} has a vocabulary of ${model.config.vocab_size}, smaller than GPT-2's ${tok.vocabSize}: corpus text cannot be fed to it.`);
  return fitDecoderKl(ctx, model, () => corpusWindows(corpus, tok, { contextSize: T, prependBos }), T, cache.manifest.exclude_bos && prependBos);
}
