import * as tf from '@tensorflow/tfjs-core';
import { gpt2Forward, type ForwardResult, type HookFn } from '../model/gpt2.js';
import type { Gpt2Model } from '../model/weights.js';
import { decode, disposeTensors, encode, toTensors, type SaeTensors } from '../sae/forward.js';
import { dropLowest, keepTopK } from './ablate.js';
import { cleanReference, disposeRef, splicedCeKl, tokenCe, type CleanRef } from './logprobs.js';
import { addReconBatch, emptyReconAcc } from './reconstruction.js';
import { relErrorSum, sqErrAndL0, windowMeans } from './reductions.js';
import { batchTokens, sumOf } from './batches.js';
import { ceDiffs } from './cediff.js';
import { meanAblationPass } from './mean_ablation.js';
import { saeHookFn } from './sae_hook.js';
import { earliestStart, residPostsAfter, startHookFor } from './splice_points.js';

/**
 * The eval pass: GPT-2 with SAEs spliced in, over token windows, in batches.
 *
 * Per batch: one clean forward (logits + every hook the rest needs), then per SAE one forward from the
 * latest residual hook at or before its hook, started from the clean value there (the layers below are
 * not recomputed), plus one per top-k / drop-lowest k; per hook one zero-ablation forward; per
 * all-at-once set one forward. Mean ablation needs the hook's mean over all eval tokens, so it runs in a
 * second pass (for residual hooks that pass starts at the hook itself and needs no clean prefix).
 * Everything the host keeps is per token ([windows, T−1]) or summed; [B, T, V] never leaves the device.
 * A failure in one SAE (or set) is recorded in its `error` and the others go on.
 */

export type { AblationSums, EngineOptions, EngineResult, EngineSae, HookAcc, RunAcc, SetAcc } from './engine-types.js';
import type { AblationSums, EngineOptions, EngineResult, EngineSae, HookAcc, RunAcc, SetAcc } from './engine-types.js';

/**
 * Bytes one batch of the eval pass holds at peak besides the model's parameters: the clean reference
 * (p [B·T, V]) and a spliced forward's logits, log-softmax and p·log q, plus the forward's activations.
 */
export function evalBatchBytes(c: Gpt2Model['config'], B: number, T: number): number {
  const N = B * T;
  const logits = N * c.vocab_size * 4;
  const acts = N * (c.n_embd * 12 + c.n_inner * 3 + c.n_head * T * 3) * 4 * 2;
  return 5 * logits + acts;
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** A forward from the start point of `hooks` (clean value there), with `replace` applied. */
function spliceForward(model: Gpt2Model, tok: tf.Tensor2D, clean: ForwardResult, replace: Record<string, HookFn>, reads: string[] = []): ForwardResult {
  const start = earliestStart(model.config, Object.keys(replace));
  return gpt2Forward(model, start ? null : tok, { start: start ? { hook: start, value: clean.hooks[start] } : undefined, replace, hooks: reads });
}

/** SAE activations and reconstruction of a hook's value x [B, T, …] flattened to [B·T, d_in]. */
function saeOn(x: tf.Tensor, p: SaeTensors): { x2: tf.Tensor2D; f: tf.Tensor2D; xhat2: tf.Tensor2D } {
  const dIn = p.W_enc.shape[0];
  if (x.size % dIn !== 0 || x.size / dIn !== x.shape[0] * x.shape[1]!)
    throw new Error(`the hook's activations have shape [${x.shape}], which the SAE's d_in ${dIn} does not fit`);
  return tf.tidy(() => {
    const x2 = tf.reshape(x, [-1, dIn]) as tf.Tensor2D;
    const f = encode(x2, p);
    return { x2, f, xhat2: decode(f, p, x2) };
  });
}

/** One SAE on one batch: reconstruction sums, spliced CE/KL per token, propagation, top-k and drop-lowest. */
async function runBatch(model: Gpt2Model, tok: tf.Tensor2D, clean: ForwardResult, ref: CleanRef, sae: EngineSae, acc: RunAcc, offset: number,
  onFeatures?: (f: tf.Tensor2D, ceSpliced: Float32Array) => Promise<void>): Promise<void> {
  const p = toTensors(sae.weights);
  const held: tf.Tensor[] = [];
  try {
    const x = clean.hooks[sae.hook];
    const { x2, f, xhat2 } = saeOn(x, p);
    held.push(x2, f, xhat2);
    await addReconBatch(acc.recon, x2, xhat2, f);
    const xhat = tf.reshape(xhat2, x.shape);
    held.push(xhat);
    const reads = acc.propagation.map((q) => q.hook);
    const out = spliceForward(model, tok, clean, { [sae.hook]: () => xhat }, reads);
    const { ceBT1, klBT1 } = splicedCeKl(out.logits!, ref);
    const [ce, kl] = await Promise.all([ceBT1.data(), klBT1.data()]);
    acc.ceSpliced.set(ce as Float32Array, offset);
    acc.kl.set(kl as Float32Array, offset);
    tf.dispose([ceBT1, klBT1, out.logits!]);
    await onFeatures?.(f, ce as Float32Array);
    for (const q of acc.propagation) q.sum += await sumOf(relErrorSum(clean.hooks[q.hook], out.hooks[q.hook]));
    tf.dispose(Object.values(out.hooks));
    const ablate = async (points: AblationSums[], fn: (f: tf.Tensor2D, k: number) => tf.Tensor2D) => {
      for (const pt of points) {
        const fk = fn(f, pt.k);
        const xk2 = decode(fk, p, x2);
        const xk = tf.reshape(xk2, x.shape);
        const sums = sqErrAndL0(x2, xk2, fk);
        const [sq, l0] = Array.from(await sums.data());
        sums.dispose();
        const o = spliceForward(model, tok, clean, { [sae.hook]: () => xk });
        const ceK = tokenCe(o.logits!, ref);
        pt.ceSum += await sumOf(tf.sum(ceK));
        pt.sqErr += sq;
        pt.l0 += l0;
        tf.dispose([fk, xk2, xk, ceK, o.logits!]);
      }
    };
    await ablate(acc.topk, keepTopK);
    await ablate(acc.dropLowest, dropLowest);
  } finally {
    tf.dispose(held);
    disposeTensors(p);
  }
}

/** Every SAE of a set spliced in at once: each reconstructs the (already perturbed) value at its hook. */
async function setBatch(model: Gpt2Model, tok: tf.Tensor2D, clean: ForwardResult, ref: CleanRef, saes: EngineSae[], acc: SetAcc): Promise<void> {
  const params = saes.map((s) => toTensors(s.weights));
  try {
    const replace: Record<string, HookFn> = {};
    saes.forEach((s, i) => (replace[s.hook] = saeHookFn(params[i])));
    const out = spliceForward(model, tok, clean, replace);
    const { ceBT1, klBT1 } = splicedCeKl(out.logits!, ref);
    acc.ceSum += await sumOf(tf.sum(ceBT1));
    acc.klSum += await sumOf(tf.sum(klBT1));
    tf.dispose([ceBT1, klBT1, out.logits!]);
  } finally {
    params.forEach(disposeTensors);
  }
}

/** Runs the eval pass (see the top of this file). windows: token windows of equal length T ≥ 2. */
export async function evaluateSaes(model: Gpt2Model, windows: readonly Int32Array[], saes: readonly EngineSae[], opts: EngineOptions): Promise<EngineResult> {
  const W = windows.length;
  if (W === 0) throw new Error('evaluateSaes: no windows');
  const T = windows[0].length;
  if (T < 2) throw new Error('evaluateSaes: windows need at least 2 tokens');
  if (windows.some((w) => w.length !== T)) throw new Error('evaluateSaes: windows differ in length');
  const c = model.config;
  const P = W * (T - 1);
  const byName = new Map(saes.map((s) => [s.name, s]));
  const runs = new Map<string, RunAcc>();
  for (const s of saes) {
    runs.set(s.name, {
      name: s.name, hook: s.hook, recon: emptyReconAcc(s.weights.dIn, s.weights.dSae),
      ceSpliced: new Float32Array(P), kl: new Float32Array(P),
      propagation: (opts.propagation ?? true) ? residPostsAfter(c, s.hook).map((q) => ({ ...q, sum: 0 })) : [],
      topk: (opts.topk ?? []).map((k) => ({ k, ceSum: 0, sqErr: 0, l0: 0 })),
      dropLowest: (opts.dropLowest ?? []).map((k) => ({ k, ceSum: 0, sqErr: 0, l0: 0 })),
    });
  }
  const sets: SetAcc[] = (opts.sets ?? []).map((names) => {
    const members = names.map((n) => byName.get(n));
    const missing = names.filter((_, i) => !members[i]);
    if (missing.length) throw new Error(`all-at-once set names unknown SAEs: ${missing.join(', ')}`);
    const hooks = members.map((m) => m!.hook);
    if (new Set(hooks).size !== hooks.length) throw new Error(`all-at-once set ${names.join(', ')} has two SAEs at one hook`);
    return { runs: [...names], hooks, ceSum: 0, klSum: 0 };
  });
  const hookList = [...new Set(saes.filter((s) => !s.onlyInSets).map((s) => s.hook))];
  const hooks = new Map<string, HookAcc>();
  const reads = new Set<string>(hookList);
  for (const h of hookList) {
    const s = startHookFor(c, h);
    if (s) reads.add(s);
  }
  for (const s of saes) if (!s.onlyInSets) for (const q of runs.get(s.name)!.propagation) reads.add(q.hook);
  for (const set of sets) {
    const s = earliestStart(c, set.hooks);
    if (s) reads.add(s);
  }
  const ceClean = new Float32Array(P);
  const B = Math.max(1, opts.batchSize);

  for (let b0 = 0; b0 < W; b0 += B) {
    const b1 = Math.min(W, b0 + B);
    const off = b0 * (T - 1);
    const tok = batchTokens(windows, b0, b1, T);
    const clean = gpt2Forward(model, tok, { hooks: [...reads] });
    const { ref, ceBT1 } = cleanReference(clean.logits!, tok);
    clean.logits!.dispose();
    try {
      ceClean.set((await ceBT1.data()) as Float32Array, off);
      ceBT1.dispose();
      for (const h of hookList) {
        const x = clean.hooks[h];
        const dIn = x.size / (x.shape[0] * x.shape[1]!);
        let acc = hooks.get(h);
        if (!acc) hooks.set(h, (acc = { hook: h, dIn, ceZeroSum: 0, ceMeanSum: NaN, mean: new Float64Array(dIn), windowMeanAct: new Float32Array(W * dIn) }));
        const wm = windowMeans(x);
        const means = (await wm.data()) as Float32Array;
        wm.dispose();
        acc.windowMeanAct.set(means, b0 * dIn);
        for (let i = 0; i < b1 - b0; i++) for (let j = 0; j < dIn; j++) acc.mean[j] += means[i * dIn + j] * T;
        const out = spliceForward(model, tok, clean, { [h]: (v) => tf.zerosLike(v) });
        const ce = tokenCe(out.logits!, ref);
        out.logits!.dispose();
        acc.ceZeroSum += await sumOf(tf.sum(ce));
        ce.dispose();
      }
      for (const [k, s] of saes.entries()) {
        const acc = runs.get(s.name)!;
        if (acc.error || s.onlyInSets) continue;
        try {
          const onF = opts.onFeatures && ((f: tf.Tensor2D, ce: Float32Array) => opts.onFeatures!(s.name, f, b0, ceDiffs(ceClean.subarray(off, off + ce.length), ce)));
          await runBatch(model, tok, clean, ref, s, acc, off, onF);
        } catch (err) {
          acc.error = message(err);
        }
        // progress per checkpoint within the batch: a fraction of the batch's windows
        if (k + 1 < saes.length) opts.onProgress?.('splice', b0 + ((k + 1) / saes.length) * (b1 - b0), W);
      }
      for (const set of sets) {
        if (set.error) continue;
        const failed = set.runs.find((n) => runs.get(n)!.error);
        if (failed) {
          set.error = `${failed} failed`;
          continue;
        }
        try {
          await setBatch(model, tok, clean, ref, set.runs.map((n) => byName.get(n)!), set);
        } catch (err) {
          set.error = message(err);
        }
      }
    } finally {
      disposeRef(ref);
      tf.dispose([tok, ...Object.values(clean.hooks)]);
    }
    opts.onProgress?.('splice', b1, W);
  }
  for (const acc of hooks.values()) for (let j = 0; j < acc.dIn; j++) acc.mean[j] /= W * T;
  if (opts.meanAblation ?? true) await meanAblationPass(model, windows, hooks, B, opts);
  return { windows: W, T, positions: W * T, predicted: P, ceClean, hooks, runs, sets };
}
