/**
 * Trains the embedded model models/gpt2-sotu: a small GPT-2 (this project's forward, src/model/gpt2.ts) with
 * GPT-2's tokenizer and 50257-token vocabulary, by tfjs autodiff and Adam (src/model/train-lm.ts), on the
 * training split of the State of the Union corpus (scripts/sotu.ts), on the wasm backend (`-- --backend webgpu` on a GPU).
 *
 *   npm run train:model                  train, or continue an interrupted run (state in .model-work/)
 *   npm run train:model -- --fresh       start over
 *   npm run train:model -- --tokens 200000 --out /tmp/m    any setting of DEFAULTS as --name value
 *   npm run train:model -- --init models/gpt2-sotu         start from a saved model's weights
 *
 * Checkpoints every few minutes (and on SIGINT/SIGTERM) into the work folder; when done, writes the model
 * (config.json + float16 model.safetensors), loss_curve.csv and training.json to --out. Then run
 * scripts/eval-model.ts for the held-out CE and the model card.
 */
import * as tf from '@tensorflow/tfjs-core';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BACKENDS, initBackend, type BackendChoice } from '../src/backend/picker.js';
import { createProgress } from '../src/ui/progress.js';
import { writeFileAtomic, writeJsonAtomic } from '../src/io/atomic.js';
import { UserError } from '../src/io/errors.js';
import { parseGpt2Config, type Gpt2Config } from '../src/model/config.js';
import { readGpt2Folder, writeGpt2Folder } from '../src/model/load.js';
import { GPT2_VOCAB_SIZE } from '../src/model/tokenizer.js';
import { trainVocab } from '../src/model/train-vocab.js';
import { batchWindows, lmLoss, lmLrScale, lmTrainStep, zeroOptState, type LmHyper, type LmOptState } from '../src/model/train-lm.js';
import { hasLmState, loadLmTensors, removeLmState, readLmStateJson, runDifferences, saveLmState, toOptState, type LmCurveRow } from '../src/model/train-lm-state.js';
import { namedParams, paramsToWeights, randomGpt2Weights, toParams, type Gpt2Model } from '../src/model/weights.js';
import { SOTU_PACKAGE, sotuPackage } from './sotu.js';
import { splitWindows, windowAt, type SplitWindows } from './sotu-windows.js';
import { DEFAULTS, NON_IDENTITY, type Settings } from './train-model-settings.js';

function parseSettings(argv: string[]): { s: Settings; fresh: boolean; work: string; out: string; backend: BackendChoice; init?: string } {
  const options = Object.fromEntries(Object.keys(DEFAULTS).map((k) => [k, { type: 'string' as const }]));
  const { values } = parseArgs({
    args: argv.filter((a) => a !== '--'),
    options: { ...options, fresh: { type: 'boolean' }, work: { type: 'string' }, out: { type: 'string' }, backend: { type: 'string' }, init: { type: 'string' } },
    strict: true,
  });
  const s = { ...DEFAULTS };
  for (const k of Object.keys(DEFAULTS) as (keyof Settings)[]) {
    const v = (values as Record<string, string | boolean | undefined>)[k];
    if (v === undefined) continue;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new UserError(`--${k}: expected a number, got "${v}".`);
    s[k] = n;
  }
  const backend = ((values.backend as string | undefined) ?? 'wasm') as BackendChoice;
  if (!BACKENDS.includes(backend)) throw new UserError(`--backend: one of ${BACKENDS.join(', ')}, got "${backend}".`);
  return { s, fresh: !!values.fresh, work: (values.work as string) ?? '.model-work', out: (values.out as string) ?? 'models/gpt2-sotu', backend, init: values.init as string | undefined };
}

function identity(s: Settings, init: string | undefined): Record<string, unknown> {
  const id: Record<string, unknown> = { ...s, vocab_size: GPT2_VOCAB_SIZE, data: `${sotuPackage().version} train split`, ...(init ? { init } : {}) };
  for (const k of NON_IDENTITY) delete id[k];
  return id;
}

function batchTensor(w: SplitWindows, idx: readonly number[]): tf.Tensor2D {
  const data = new Int32Array(idx.length * w.context);
  idx.forEach((k, i) => data.set(windowAt(w, k), i * w.context));
  return tf.tensor2d(data, [idx.length, w.context], 'int32');
}

/** Mean CE over the monitoring windows (batches of 8), no gradients. */
async function monitorCe(model: Gpt2Model, w: SplitWindows, idx: readonly number[]): Promise<number> {
  let sum = 0;
  for (let i = 0; i < idx.length; i += 8) {
    const part = idx.slice(i, i + 8);
    const tok = batchTensor(w, part);
    const l = lmLoss(model, tok);
    sum += (await l.data())[0] * part.length;
    tf.dispose([tok, l]);
  }
  return sum / idx.length;
}

const CURVE_HEAD = 'step,tokens,train_loss,heldout_ce,lr,elapsed_s,stage';

/**
 * loss_curve.csv. A run from --init continues the curve of the model it started from (`prior`, that model's
 * loss_curve.csv) as the next stage: step and elapsed_s count within a stage, tokens from the start of stage 1.
 */
function curveCsv(rows: readonly LmCurveRow[], prior?: string): string {
  const priorRows = prior ? prior.trim().split('\n').slice(1).map((l) => l.split(',')) : [];
  const priorHasStage = !!prior && prior.split('\n')[0].split(',').length >= 7;
  const before = priorRows.map((r) => (priorHasStage ? r : [...r.slice(0, 6), '1']).join(','));
  const stage = priorRows.length ? Math.max(...before.map((l) => Number(l.split(',')[6]))) + 1 : 1;
  const offset = priorRows.length ? Number(priorRows[priorRows.length - 1][1]) : 0;
  // Step 0 of a continued run monitors the weights it starts from: the prior curve's last row already has them.
  const own = rows.filter((r) => !(priorRows.length && r.step === 0));
  const lines = own.map((r) => [r.step, r.tokens + offset, r.train_loss === null ? '' : r.train_loss.toFixed(4), r.heldout_ce === null ? '' : r.heldout_ce.toFixed(4), r.lr.toExponential(3), r.elapsed_s.toFixed(0), stage].join(','));
  return [CURVE_HEAD, ...before, ...lines].join('\n') + '\n';
}

/** --init: continue from a saved model of the same shape (its weights only; the schedule starts over). */
function initialWeights(dir: string, config: Gpt2Config) {
  const r = readGpt2Folder(dir);
  for (const k of ['n_layer', 'n_head', 'n_embd', 'n_positions', 'vocab_size'] as const)
    if (r.config[k] !== config[k]) throw new UserError(`${dir}/config.json: ${k} is ${r.config[k]}, the settings say ${config[k]}. Give matching --${k} or another --init.`);
  return r.weights;
}

async function main(): Promise<void> {
  const { s, fresh, work, out, backend: choice, init } = parseSettings(process.argv.slice(2));
  const backend = await initBackend(choice);
  mkdirSync(work, { recursive: true });
  if (fresh) removeLmState(work); // the tokenized-windows cache stays

  const config = parseGpt2Config({ n_layer: s.n_layer, n_head: s.n_head, n_embd: s.n_embd, n_positions: s.n_positions, vocab_size: GPT2_VOCAB_SIZE }, 'train-model settings');
  const stepTokens = s.batch * s.n_positions;
  const hyper: LmHyper = {
    lr: s.lr, beta1: s.beta1, beta2: s.beta2, eps: s.eps, gradClip: s.grad_clip,
    totalSteps: Math.ceil(s.tokens / stepTokens), warmupSteps: s.warmup_steps, minLrRatio: s.min_lr_ratio,
  };
  const id = identity(s, init);
  // Read now: --out may be the --init folder, whose training.json the record below replaces.
  const initRecord = init && existsSync(join(init, 'training.json')) ? JSON.parse(readFileSync(join(init, 'training.json'), 'utf8')) : undefined;
  const initCurve = init && existsSync(join(init, 'loss_curve.csv')) ? readFileSync(join(init, 'loss_curve.csv'), 'utf8') : undefined;

  console.log('tokenizing the SOTU splits (cached in the work folder after the first run)…');
  const train = splitWindows('train', s.n_positions, work);
  const heldout = splitWindows('heldout', s.n_positions, work);
  const monitor = Array.from({ length: Math.min(s.monitor_windows, heldout.n) }, (_, i) => Math.floor((i * heldout.n) / Math.min(s.monitor_windows, heldout.n)));
  console.log(`train split: ${train.documents} addresses, ${train.corpusTokens} tokens, ${train.n} windows of ${s.n_positions}; ` +
    `held-out split: ${heldout.documents} addresses, ${heldout.n} windows (${monitor.length} monitored)`);

  // Model and optimizer: fresh, or from the work folder's state.
  let model: Gpt2Model;
  let opt: LmOptState;
  let step = 0, elapsed = 0;
  let curve: LmCurveRow[] = [];
  if (hasLmState(work)) {
    const j = readLmStateJson(work);
    const diff = runDifferences(j.run, id);
    if (diff.length) throw new UserError(`${work}: holds a run with different settings (${diff.join(', ')}). Run with --fresh to start over, or give the same settings.`);
    const saved = loadLmTensors(work, j);
    model = { config, params: toParams(config, saved.weights, { trainable: true }) };
    opt = toOptState(model, saved.m, saved.v, work);
    ({ step, elapsed_s: elapsed, curve } = j);
    console.log(`resuming at step ${step}/${hyper.totalSteps} (${step * stepTokens} tokens, ${(elapsed / 60).toFixed(1)} min so far)`);
  } else {
    model = { config, params: toParams(config, init ? initialWeights(init, config) : randomGpt2Weights(config, s.seed), { trainable: true }) };
    opt = zeroOptState(model);
    if (init) console.log(`starting from the weights of ${init} (fresh optimizer state and schedule)`);
  }
  // Untrained rows stay at their initial values, so their moments are the same whether fresh or resumed.
  const vocab = s.unembed_subset ? trainVocab(train.tokens, model.params.wte.dataSync() as Float32Array, GPT2_VOCAB_SIZE, s.n_embd) : undefined;
  if (vocab) console.log(`unembedding over the ${vocab.ids.length} token ids of the training split + 1 rest logit for the other ${vocab.restCount} rows`);
  const nParams = namedParams(model.params).reduce((a, [, t]) => a + t.size, 0);
  console.log(`model: ${s.n_layer} layers, d_model ${s.n_embd}, ${s.n_head} heads, context ${s.n_positions}, vocab ${GPT2_VOCAB_SIZE}: ${nParams} parameters; ` +
    `${hyper.totalSteps} steps of ${s.batch}×${s.n_positions} tokens on ${backend.detail}`);

  const checkpoint = async () => saveLmState(work, model, opt, { run: id, step, elapsed_s: elapsed, curve });
  let stop = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => { stop = true; });

  if (step === 0 && curve.length === 0) curve.push({ step: 0, tokens: 0, train_loss: null, heldout_ce: await monitorCe(model, heldout, monitor), lr: 0, elapsed_s: 0 });
  if (step >= hyper.totalSteps) console.log(`already trained (${step} steps); writing the outputs again from the saved state`);
  const progress = createProgress('train-model', hyper.totalSteps * stepTokens, 'tok', step * stepTokens);
  const sessionStart = performance.now(), elapsedAtStart = elapsed;
  let lastSave = performance.now();
  let lossSum = 0, lossN = 0;
  while (step < hyper.totalSteps && !stop) {
    const tok = batchTensor(train, batchWindows(step, s.batch, train.n, s.seed));
    const r = await lmTrainStep(model, tok, opt, step, hyper, vocab);
    tok.dispose();
    await new Promise((res) => setImmediate(res)); // wasm's awaits are microtasks: let signal handlers run
    if (!Number.isFinite(r.loss)) throw new Error(`loss is ${r.loss} at step ${step}; lower --lr and run with --fresh`);
    step++;
    elapsed = elapsedAtStart + (performance.now() - sessionStart) / 1000;
    lossSum += r.loss;
    lossN++;
    const last = step === hyper.totalSteps;
    if (step % s.log_every === 0 || last) {
      const mon = step % s.monitor_every === 0 || last ? await monitorCe(model, heldout, monitor) : null;
      curve.push({ step, tokens: step * stepTokens, train_loss: lossSum / lossN, heldout_ce: mon, lr: hyper.lr * lmLrScale(step - 1, hyper), elapsed_s: elapsed });
      lossSum = lossN = 0;
    }
    const row = curve[curve.length - 1];
    const mon = [...curve].reverse().find((c) => c.heldout_ce !== null)?.heldout_ce;
    progress.update(step * stepTokens, { loss: row.train_loss ?? '?', 'held-out': mon ?? '?', step: `${step}/${hyper.totalSteps}` });
    if ((performance.now() - lastSave) / 1000 >= s.checkpoint_every_s || last) {
      await checkpoint();
      lastSave = performance.now();
    }
  }
  progress.stop();
  if (stop && step < hyper.totalSteps) {
    await checkpoint();
    console.log(`stopped at step ${step}/${hyper.totalSteps}; the state is saved in ${work}. Run the same command again to continue.`);
    process.exit(130);
  }

  // Finished: the model in Hugging Face layout (float16), its curve and its training record.
  const weights = await paramsToWeights(model.params);
  writeGpt2Folder(out, config, weights, { dtype: 'F16' });
  writeFileAtomic(join(out, 'loss_curve.csv'), curveCsv(curve, initCurve));
  const tail = curve.filter((c) => c.step > 0).slice(-5);
  const record = {
    settings: s,
    // A continued run: the weights it started from, and how those were trained (the schedule started over).
    ...(init ? { init: { from: init, training: initRecord ?? null } } : {}),
    parameters: nParams,
    steps: step,
    tokens: step * stepTokens,
    predicted_tokens: step * s.batch * (s.n_positions - 1),
    final_train_loss: tail.reduce((a, c) => a + (c.train_loss ?? 0), 0) / tail.length,
    final_train_loss_steps: `mean of the training batches of steps ${tail[0].step - s.log_every + 1}–${step}`,
    final_monitor_heldout_ce: curve[curve.length - 1].heldout_ce,
    wall_time_s: Math.round(elapsed),
    tokens_per_s: Math.round((step * stepTokens) / elapsed),
    data: {
      source: `npm package ${SOTU_PACKAGE}@${sotuPackage().version}`,
      split: 'training: addresses of years not ending in 5 (scripts/sotu.ts)',
      addresses: train.documents,
      corpus_tokens: train.corpusTokens,
      windows: train.n,
      epochs: +((step * s.batch) / train.n).toFixed(3),
    },
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, backend: backend.detail },
    finished: new Date().toISOString(),
  };
  writeJsonAtomic(join(out, 'training.json'), record);
  console.log(`done: ${step} steps, ${record.tokens} tokens in ${(elapsed / 60).toFixed(1)} min (${record.tokens_per_s} tokens/s); ` +
    `final train loss ${record.final_train_loss.toFixed(3)}; model written to ${out}. Next: npm run eval:model`);
}

main().catch((err) => {
  if (err instanceof UserError) {
    console.error(`error: ${err.message}`);
    process.exit(2);
  }
  throw err;
});
