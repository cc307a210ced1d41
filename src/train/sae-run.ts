import * as tf from '@tensorflow/tfjs-core';
import { join } from 'node:path';
import type { StreamState } from '../activations/shuffle.js';
import { UserError } from '../io/errors.js';
import { saveCheckpoint, type SaeCfg } from '../sae/checkpoint.js';
import { toTensors, toWeights } from '../sae/forward.js';
import { STAT_NAMES } from '../sae/loss.js';
import type { SaeWeights } from '../sae/weights.js';
import { ADAM_EPS } from './config.js';
import { deadFraction, inCountingWindow, recordStep, sparsityLog10, type FeatureStats } from './features.js';
import { foldActivationScale } from './normalize.js';
import { l1Scale, lrScale } from './schedule.js';
import { disposeTrainState, newTrainState, trainStep, type SaeTrainState } from './step.js';
import { removeTrainerState, saveTrainerState, type HostTrainState } from './state.js';
import type { TrainConfig } from './config.js';
import type { MetricsLine } from './metrics.js';

/** What one step of one run reports. */
export type StepReport = Omit<MetricsLine, 'epoch'>;

/**
 * One SAE being trained: its device state, feature statistics and cfg. The
 * trainer feeds it batches; it owns no I/O but its checkpoint writes.
 */
export class SaeRun {
  private constructor(
    readonly dir: string,
    readonly cfg: SaeCfg,
    private state: SaeTrainState,
    readonly features: FeatureStats,
  ) {}

  get name(): string {
    return this.cfg.run_name;
  }

  get hook(): string {
    return this.cfg.hook_name;
  }

  /** The factor raw activations are multiplied by before this SAE sees them. */
  get scale(): number {
    return this.cfg.activation_scale;
  }

  get step(): number {
    return this.state.step;
  }

  /** A new run from initial weights (in training space). */
  static start(dir: string, cfg: SaeCfg, init: SaeWeights, features: FeatureStats): SaeRun {
    return new SaeRun(dir, cfg, newTrainState(toTensors(init)), features);
  }

  /** A run continued from its trainer_state/. */
  static resume(dir: string, s: HostTrainState, cfg: SaeCfg): SaeRun {
    const state: SaeTrainState = { params: toTensors(s.params), m: toTensors(s.m), v: toTensors(s.v), step: s.step };
    return new SaeRun(dir, cfg, state, s.features);
  }

  /**
   * One optimizer step on xBD [batch, d_in] (already scaled), the first `seenBefore`
   * tokens having been trained on. A non-finite loss stops the run with the step
   * named, leaving the state (and the last checkpoint on disk) as they were.
   */
  async trainOn(xBD: tf.Tensor2D, seenBefore: number, t: TrainConfig, sparseMaxL0: number): Promise<StepReport> {
    const batch = xBD.shape[0];
    // a run's own cfg always has these (null only for SAEs imported from other tools)
    const lr = this.cfg.lr! * lrScale(seenBefore, t);
    const l1 = this.cfg.l1_coefficient! * l1Scale(seenBefore, t);
    const { next, stats, fireCountF } = trainStep(this.state, xBD, {
      lr, l1, decoder: this.cfg.decoder!, beta1: t.adam_beta1, beta2: t.adam_beta2, eps: ADAM_EPS, clipNorm: t.grad_clip_norm, sparseMaxL0,
    });
    // Async reads: the webgpu backend cannot read synchronously in Node (its dataSync needs OffscreenCanvas).
    const [s, fires] = await Promise.all([stats.data(), fireCountF.data()]).finally(() => tf.dispose([stats, fireCountF]));
    const stat = (k: (typeof STAT_NAMES)[number]) => s[STAT_NAMES.indexOf(k)];
    const step = this.state.step + 1;
    if (!Number.isFinite(stat('loss'))) {
      disposeTrainState(next);
      throw new UserError(`run ${this.name}: the loss became ${stat('loss')} at step ${step} (after ${seenBefore} tokens). Training stopped; ${join(this.dir, 'trainer_state')} keeps the last good checkpoint, if one was written. Lower lr (${this.cfg.lr}) or l1_coefficient (${this.cfg.l1_coefficient}), then train again with --fresh.`);
    }
    disposeTrainState(this.state);
    this.state = next;
    const seen = seenBefore + batch;
    recordStep(this.features, fires, batch, seen, inCountingWindow(seenBefore, t.tokens, t.dead_window_tokens));
    return {
      step,
      tokens: seen,
      loss: stat('loss'),
      mse: stat('mse'),
      sparsity: stat('sparsity'),
      l1_coefficient: l1,
      lr,
      l0: stat('l0'),
      explained_variance: 1 - stat('sse') / Math.max(stat('sst'), 1e-30),
      dead_fraction: deadFraction(this.features, seen, t.dead_window_tokens),
    };
  }

  /** Weights in training space (the activation scale not folded in). */
  async trainingWeights(): Promise<SaeWeights> {
    return toWeights(this.state.params);
  }

  /** Writes trainer_state/ (atomically: see state.ts). */
  async checkpoint(tokensSeen: number, stream: StreamState): Promise<void> {
    const [params, m, v] = await Promise.all([toWeights(this.state.params), toWeights(this.state.m), toWeights(this.state.v)]);
    saveTrainerState(this.dir, { step: this.state.step, tokensSeen, params, m, v, stream, features: this.features, cfg: this.cfg });
  }

  /** Writes the finished checkpoint (scale folded in, cfg.json last) and removes trainer_state/. */
  async finish(backend: { name: string; detail: string; adapter?: object }): Promise<void> {
    const w = foldActivationScale(await this.trainingWeights(), this.scale);
    const cfg = { ...this.cfg, backend: backend.name, backend_detail: backend.detail, backend_adapter: backend.adapter };
    saveCheckpoint(this.dir, cfg, w, sparsityLog10(this.features));
    removeTrainerState(this.dir);
  }

  dispose(): void {
    disposeTrainState(this.state);
  }
}
