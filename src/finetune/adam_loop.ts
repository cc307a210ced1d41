import * as tf from '@tensorflow/tfjs-core';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ShuffleStream, type StreamState } from '../activations/shuffle.js';
import { writeJsonAtomic } from '../io/atomic.js';
import { UserError } from '../io/errors.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import { createProgress } from '../ui/progress.js';
import { info, warn } from '../ui/log.js';
import { currentBackend } from '../backend/picker.js';
import { checkBackendChange, recordOf, type BackendRecord } from '../backend/record.js';
import { adamUpdate } from '../train/adam.js';
import { ADAM_EPS } from '../train/config.js';
import { lrScale, totalSteps } from '../train/schedule.js';
import { writeFittingView } from './fit_view.js';
import { pollingStops, stopRequested, stopSignal, StopRequested } from '../parallel/stop-signal.js';
import type { MethodContext } from './method-types.js';

/**
 * Adam on one parameter tensor over a stream of batches, for finetune.tokens,
 * with the trainer's lr schedule; saves and resumes its state (parameter,
 * moments, step, the source's position) in <finetune>/trainer_state/ every
 * finetune.checkpoint_every_tokens. The method supplies the initial parameter,
 * a loss-and-gradient function and the batch source; adamOverStream is the
 * usual source, the trainer's shuffled stream over the cache's fitting rows.
 */
export const BETA1 = 0.9;
export const BETA2 = 0.999;
const LOG_EVERY = 10;
const FORMAT = 'sae-train.finetune-adam-state/v1';

interface StateJson {
  format: typeof FORMAT;
  name: string;
  step: number;
  tokens_seen: number;
  tensors_file: string;
  stream: unknown;
  loss_curve: [number, number][];
  /** The backend record the state was computed on (absent in states of older versions). */
  backend?: BackendRecord;
}

export interface AdamLoopSpec<T> {
  /** Names the state files and the progress bar. */
  name: string;
  shape: number[];
  /** Initial parameter (used when there is no state to resume). */
  init: () => Float32Array;
  /** Loss (scalar) and gradient for a batch; runs inside a tidy. */
  lossAndGrad: (batch: T, param: tf.Tensor) => { loss: tf.Scalar; grad: tf.Tensor };
  /** Shown in the progress bar: the logged loss as the user reads it. */
  show?: (loss: number) => Record<string, number>;
}

/** Where batches come from: resumable from a JSON-able state. */
export interface BatchSource<T> {
  next(): T;
  /** The position to save; `open(state)` must continue from exactly there. */
  state(): unknown;
  /** Passes over the data begun so far. */
  epochs: number;
}

/** Batches per optimizer step in tokens, and a source opened fresh or from a saved position. */
export interface SourceSpec<T> {
  tokensPerStep: number;
  open: (state: unknown | undefined) => BatchSource<T>;
}

export interface AdamLoopResult {
  param: Float32Array;
  steps: number;
  epochs: number;
  lossCurve: [number, number][];
  hyper: { optimizer: 'adam'; lr: number; beta1: number; beta2: number; batch_size: number; lr_warmup_tokens: number; lr_decay_tokens: number };
}

function saveState(dir: string, j: Omit<StateJson, 'format' | 'tensors_file'>, tensors: Record<string, Float32Array>, shape: number[]): void {
  const file = `${j.name}-${String(j.step).padStart(9, '0')}.safetensors`;
  writeSafetensors(join(dir, file), Object.fromEntries(Object.entries(tensors).map(([k, data]) => [k, { shape, data }])), { step: String(j.step) });
  writeJsonAtomic(join(dir, `${j.name}.json`), { format: FORMAT, tensors_file: file, ...j });
  for (const e of readdirSync(dir)) if (e.startsWith(`${j.name}-`) && e !== file) rmSync(join(dir, e), { force: true });
}

function loadState(dir: string, name: string, shape: number[]): { j: StateJson; p: Float32Array; m: Float32Array; v: Float32Array } | undefined {
  const path = join(dir, `${name}.json`);
  if (!existsSync(path)) return undefined;
  let j: StateJson;
  try {
    j = JSON.parse(readFileSync(path, 'utf8')) as StateJson;
  } catch {
    throw new UserError(`${path}: unreadable finetune state. Run with --fresh.`);
  }
  if (j.format !== FORMAT || j.name !== name) throw new UserError(`${path}: not a ${name} finetune state. Run with --fresh.`);
  const { tensors } = readSafetensors(join(dir, j.tensors_file));
  for (const k of ['param', 'm', 'v'])
    if (tensors[k]?.shape.join(',') !== shape.join(',')) throw new UserError(`${join(dir, j.tensors_file)}: tensor ${k} is missing or misshapen. Run with --fresh.`);
  return { j, p: tensors.param.data, m: tensors.m.data, v: tensors.v.data };
}

/** adamLoop over the trainer's shuffled stream of the fitting rows of the cache; batches are raw xBD [batch, d_in]. */
export async function adamOverStream(ctx: MethodContext, spec: AdamLoopSpec<tf.Tensor2D>): Promise<AdamLoopResult> {
  const { section, split, parent } = ctx;
  const hook = parent.cfg.hook_name;
  const dIn = parent.cfg.d_in;
  const B = section.batch_size;
  const view = writeFittingView(ctx.cache, split.fitRows, join(ctx.outDir, 'trainer_state', 'fit-cache'));
  if (section.tokens > split.fitRows) info(`  ${section.tokens} tokens over ${split.fitRows} fitting rows: ${(section.tokens / split.fitRows).toFixed(1)} epochs, reshuffled each time.`);
  return adamLoop(ctx, { ...spec, lossAndGrad: (raw: Float32Array, P) => spec.lossAndGrad(tf.tensor2d(raw, [B, dIn]), P) }, {
    tokensPerStep: B,
    open: (state) => {
      const stream = new ShuffleStream(view, [hook], { bufferRows: Math.min(section.shuffle_buffer_tokens, split.fitRows), seed: section.seed }, state as StreamState | undefined);
      return { next: () => stream.next(B)[hook], state: () => stream.state(), get epochs() { return stream.epochs; } };
    },
  });
}

/** The optimisation loop: Adam steps until finetune.tokens, checkpoints, resume, progress; stops cleanly on a stop signal. */
export const adamLoop = <T>(ctx: MethodContext, spec: AdamLoopSpec<T>, source: SourceSpec<T>): Promise<AdamLoopResult> =>
  pollingStops(() => adamSteps(ctx, spec, source));

async function adamSteps<T>(ctx: MethodContext, spec: AdamLoopSpec<T>, source: SourceSpec<T>): Promise<AdamLoopResult> {
  const { section, parent } = ctx;
  const B = source.tokensPerStep;
  const dir = join(ctx.outDir, 'trainer_state');
  const saved = loadState(dir, spec.name, spec.shape);
  const sched = { tokens: section.tokens, batch_size: B, l1_warmup_tokens: 0, lr_warmup_tokens: section.lr_warmup_tokens, lr_decay_tokens: section.lr_decay_tokens };
  const steps = totalSteps(sched);
  const stream = source.open(saved?.j.stream);
  if (saved) info(`  resuming at step ${saved.j.step} of ${steps} from ${dir}`);
  const backend = recordOf(currentBackend());
  const note = saved?.j.backend && checkBackendChange(`${spec.name} finetune of ${parent.dir}: resuming at step ${saved.j.step}`, saved.j.backend, backend, !!ctx.allowBackendChange);
  if (note) warn(note);
  const hyper = { optimizer: 'adam' as const, lr: section.lr, beta1: BETA1, beta2: BETA2, batch_size: B, lr_warmup_tokens: section.lr_warmup_tokens, lr_decay_tokens: section.lr_decay_tokens };

  let P: tf.Tensor = tf.tensor(saved ? saved.p : spec.init(), spec.shape);
  let m: tf.Tensor = saved ? tf.tensor(saved.m, spec.shape) : tf.zeros(spec.shape);
  let v: tf.Tensor = saved ? tf.tensor(saved.v, spec.shape) : tf.zeros(spec.shape);
  const curve: [number, number][] = saved ? [...saved.j.loss_curve] : [];
  let step = saved?.j.step ?? 0;
  const bar = createProgress(spec.name, steps * B, 'tok', step * B);
  try {
    while (step < steps) {
      const seenBefore = step * B;
      const batch = stream.next();
      const lossT = tf.tidy(() => {
        const { loss, grad } = spec.lossAndGrad(batch, P);
        const u = adamUpdate(P, grad, m, v, step + 1, { lr: section.lr * lrScale(seenBefore, sched), beta1: BETA1, beta2: BETA2, eps: ADAM_EPS });
        tf.dispose([P, m, v]);
        P = tf.keep(u.p);
        m = tf.keep(u.m);
        v = tf.keep(u.v);
        return loss;
      });
      step++;
      if (step % LOG_EVERY === 0 || step === steps || step === 1) {
        const loss = (await lossT.data())[0];
        if (!Number.isFinite(loss))
          throw new UserError(`${spec.name} finetune of ${parent.dir}: the loss is ${loss} at step ${step}. Lower finetune.lr; the last good state (if any) stays in ${dir}.`);
        curve.push([step * B, loss]);
        bar.update(step * B, spec.show?.(loss) ?? { loss });
      }
      lossT.dispose();
      const save = async () => {
        const [ph, mh, vh] = (await Promise.all([P.data(), m.data(), v.data()])) as Float32Array[];
        saveState(dir, { name: spec.name, step, tokens_seen: step * B, stream: stream.state(), loss_curve: curve, backend }, { param: ph, m: mh, v: vh }, spec.shape);
      };
      if (step < steps && Math.floor((step * B) / section.checkpoint_every_tokens) > Math.floor(seenBefore / section.checkpoint_every_tokens)) await save();
      ctx.afterStep?.(step);
      if (step < steps && (await stopRequested())) {
        // Preempted (SIGUSR1/SIGTERM): save where we are; a rerun resumes from here.
        await save();
        throw new StopRequested(stopSignal()!, `${spec.name} finetune of ${parent.dir} saved step ${step} of ${steps} in ${dir}; run it again to resume`);
      }
    }
    return { param: (await P.data()) as Float32Array, steps, epochs: stream.epochs, lossCurve: curve, hyper };
  } finally {
    bar.stop();
    tf.dispose([P, m, v]);
  }
}
