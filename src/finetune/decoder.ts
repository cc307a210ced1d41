import * as tf from '@tensorflow/tfjs-core';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ShuffleStream, type StreamState } from '../activations/shuffle.js';
import { formatBytes, WASM_SAFE_BYTES } from '../backend/memory.js';
import { currentBackend } from '../backend/picker.js';
import { writeJsonAtomic } from '../io/atomic.js';
import { UserError } from '../io/errors.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import { createProgress } from '../cli/progress.js';
import { info } from '../cli/log.js';
import { encode } from '../sae/forward.js';
import { cloneWeights } from '../sae/weights.js';
import { adamUpdate } from '../train/adam.js';
import { ADAM_EPS } from '../train/config.js';
import { lrScale, totalSteps } from '../train/schedule.js';
import { decoderMseGrad } from './decoder_grad.js';
import { writeFittingView } from './fit_view.js';
import type { MethodContext, MethodResult } from './methods.js';

/**
 * `decoder`: retrain W_dec with MSE only, encoder frozen, Adam, for
 * finetune.tokens, on the trainer's shuffled stream over the fitting rows.
 *
 * b_dec stays the parent's: with apply_b_dec_to_input (DESIGN.md checkpoint
 * format) b_dec is also the encoder's input centring, f = ReLU((x − b_dec)·W_enc
 * + b_enc), so moving it would change which features fire and L0 could not stay
 * fixed. Only W_dec is retrained.
 *
 * Works in the parent's training units (activations × cfg.activation_scale s):
 * the target is s·(x − b_dec) and the parameter s·W_dec, so finetune.lr means
 * what train.lr means. f comes from the parent's saved (raw) encoder, no
 * gradient. Resumable: trainer_state/decoder.json + decoder-<step>.safetensors.
 */

const BETA1 = 0.9;
const BETA2 = 0.999;
const STATE_JSON = 'decoder.json';
const LOG_EVERY = 10;

interface DecoderStateJson {
  format: 'sae-train.finetune-decoder-state/v1';
  step: number;
  tokens_seen: number;
  tensors_file: string;
  stream: StreamState;
  loss_curve: [number, number][];
}

/** Peak tensor bytes of a decoder finetune step (float32). */
export function decoderFinetuneBytes(dIn: number, dSae: number, batch: number): number {
  // parent W_enc, W_dec; trained W, m, v, dW and Adam's new W, m, v
  const params = 9 * dIn * dSae * 4;
  // pre-activations, f, fᵀ; x, r, f·W, err
  const acts = batch * dSae * 4 * 3 + batch * dIn * 4 * 4;
  return params + acts;
}

function stateDir(ctx: MethodContext): string {
  return join(ctx.outDir, 'trainer_state');
}

function saveState(dir: string, j: Omit<DecoderStateJson, 'format' | 'tensors_file'>, W: Float32Array, m: Float32Array, v: Float32Array, shape: number[]): void {
  const file = `decoder-${String(j.step).padStart(9, '0')}.safetensors`;
  writeSafetensors(join(dir, file), { W_dec: { shape, data: W }, 'm.W_dec': { shape, data: m }, 'v.W_dec': { shape, data: v } }, { step: String(j.step) });
  writeJsonAtomic(join(dir, STATE_JSON), { format: 'sae-train.finetune-decoder-state/v1', tensors_file: file, ...j });
  for (const e of readdirSync(dir)) if (e.startsWith('decoder-') && e !== file) rmSync(join(dir, e), { force: true });
}

function loadState(dir: string, shape: number[]): { j: DecoderStateJson; W: Float32Array; m: Float32Array; v: Float32Array } | undefined {
  const p = join(dir, STATE_JSON);
  if (!existsSync(p)) return undefined;
  const j = JSON.parse(readFileSync(p, 'utf8')) as DecoderStateJson;
  if (j.format !== 'sae-train.finetune-decoder-state/v1') throw new UserError(`${p}: not a decoder finetune state. Run with --fresh.`);
  const { tensors } = readSafetensors(join(dir, j.tensors_file));
  for (const k of ['W_dec', 'm.W_dec', 'v.W_dec'])
    if (tensors[k]?.shape.join(',') !== shape.join(',')) throw new UserError(`${join(dir, j.tensors_file)}: tensor ${k} is missing or misshapen. Run with --fresh.`);
  return { j, W: tensors.W_dec.data, m: tensors['m.W_dec'].data, v: tensors['v.W_dec'].data };
}

export async function decoderMethod(ctx: MethodContext): Promise<MethodResult> {
  const { parent, section, split, p } = ctx;
  const { d_in: dIn, d_sae: dSae, hook_name: hook } = parent.cfg;
  const B = section.batch_size;
  const bytes = decoderFinetuneBytes(dIn, dSae, B);
  if (currentBackend().name === 'wasm' && bytes > WASM_SAFE_BYTES)
    throw new UserError(`decoder finetune of ${parent.dir} (d_in ${dIn}, d_sae ${dSae}, batch ${B}) needs about ${formatBytes(bytes)} of tensor memory, more than the ${formatBytes(WASM_SAFE_BYTES)} the wasm backend holds safely. Lower finetune.batch_size or use the tensorflow backend.`);
  const s = parent.cfg.activation_scale;
  const shape = [dSae, dIn];
  const dir = stateDir(ctx);
  const view = writeFittingView(ctx.cache, split.fitRows, join(dir, 'fit-cache'));
  const saved = loadState(dir, shape);
  const sched = { tokens: section.tokens, batch_size: B, l1_warmup_tokens: 0, lr_warmup_tokens: section.lr_warmup_tokens, lr_decay_tokens: section.lr_decay_tokens };
  const steps = totalSteps(sched);
  const bufferRows = Math.min(section.shuffle_buffer_tokens, split.fitRows);
  const stream = new ShuffleStream(view, [hook], { bufferRows, seed: section.seed }, saved?.j.stream);
  if (saved) info(`  resuming the decoder finetune at step ${saved.j.step} of ${steps} from ${dir}`);
  if (section.tokens > split.fitRows) info(`  ${section.tokens} tokens over ${split.fitRows} fitting rows: ${(section.tokens / split.fitRows).toFixed(1)} epochs, reshuffled each time.`);

  let W = tf.tensor2d(saved ? saved.W : Float32Array.from(parent.weights.W_dec, (w) => w * s), [dSae, dIn]) as tf.Tensor;
  let m = saved ? tf.tensor2d(saved.m, [dSae, dIn]) as tf.Tensor : tf.zeros([dSae, dIn]);
  let v = saved ? tf.tensor2d(saved.v, [dSae, dIn]) as tf.Tensor : tf.zeros([dSae, dIn]);
  const bDecS = tf.tidy(() => tf.mul(p.b_dec, s)) as tf.Tensor1D;
  const curve: [number, number][] = saved ? [...saved.j.loss_curve] : [];
  let step = saved?.j.step ?? 0;
  const bar = createProgress('decoder', steps * B, 'tok', step * B);
  let Wn: Float32Array;
  try {
    while (step < steps) {
      const seenBefore = step * B;
      const raw = stream.next(B)[hook];
      const lossT = tf.tidy(() => {
        const x = tf.tensor2d(raw, [B, dIn]);
        const f = encode(x, p);
        const r = tf.sub(tf.mul(x, s), bDecS) as tf.Tensor2D;
        const { loss, dW } = decoderMseGrad(f, r, W as tf.Tensor2D);
        const u = adamUpdate(W, dW, m, v, step + 1, { lr: section.lr * lrScale(seenBefore, sched), beta1: BETA1, beta2: BETA2, eps: ADAM_EPS });
        tf.dispose([W, m, v]);
        W = tf.keep(u.p);
        m = tf.keep(u.m);
        v = tf.keep(u.v);
        return loss;
      });
      step++;
      if (step % LOG_EVERY === 0 || step === steps || step === 1) {
        const loss = (await lossT.data())[0];
        if (!Number.isFinite(loss))
          throw new UserError(`decoder finetune of ${parent.dir}: the loss is ${loss} at step ${step}. Lower finetune.lr; the last good state (if any) stays in ${dir}.`);
        curve.push([step * B, loss]);
        bar.update(step * B, { mse: loss / dIn });
      }
      lossT.dispose();
      if (step < steps && Math.floor((step * B) / section.checkpoint_every_tokens) > Math.floor(seenBefore / section.checkpoint_every_tokens)) {
        const [Wh, mh, vh] = await Promise.all([W.data(), m.data(), v.data()]) as Float32Array[];
        saveState(dir, { step, tokens_seen: step * B, stream: stream.state(), loss_curve: curve }, Wh, mh, vh, shape);
      }
      ctx.afterStep?.(step);
    }
    Wn = (await W.data()) as Float32Array;
  } finally {
    bar.stop();
    tf.dispose([W, m, v, bDecS]);
  }
  const weights = cloneWeights(parent.weights);
  for (let i = 0; i < Wn.length; i++) weights.W_dec[i] = Wn[i] / s;
  return {
    weights,
    fit: {
      tokens: steps * B, rows: [0, split.fitRows], optimizer: 'adam', lr: section.lr, beta1: BETA1, beta2: BETA2, batch_size: B,
      steps, epochs: stream.epochs, activation_scale: s, trained: ['W_dec'], frozen: ['W_enc', 'b_enc', 'b_dec'],
      loss_curve: curve,
    },
  };
}
