/**
 * Measures the embedded model as it is stored (float16 weights loaded back by loadGpt2) and writes its model card:
 *   - held-out CE: every window of the SOTU held-out split (scripts/sotu.ts), the model's own
 *     meanCrossEntropy (src/model/gpt2.ts), over all predicted positions;
 *   - the test slice: the first TEST_SLICE_WINDOWS windows of data/quickstart/heldout.txt, the figure that
 *     test/embedded-model.test.ts checks;
 *   - baselines: uniform (ln 50257) and a unigram model of the training split (add-one smoothing);
 *   - float32 vs float16: the test slice with the final float32 weights from the work folder, when present;
 *   - a greedy continuation of a prompt, to show what the model is like.
 * Writes <model>/eval.json and <model>/README.md (scripts/model-card.ts).
 *   npm run eval:model [-- --model models/gpt2-sotu --work .model-work] [--limit N: first N held-out windows only]
 *   npm run eval:model -- --card-only      re-render README.md from eval.json, measuring nothing
 *   npm run eval:model -- --spectrum-only  measure the residual-stream spectrum only, into eval.json and README.md
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/backend/picker.js';
import { createProgress } from '../src/ui/progress.js';
import { writeFileAtomic, writeJsonAtomic } from '../src/io/atomic.js';
import { UserError } from '../src/io/errors.js';
import { generate } from '../src/model/generate.js';
import { loadGpt2 } from '../src/model/load.js';
import { gpt2Tokenizer, GPT2_VOCAB_SIZE } from '../src/model/tokenizer.js';
import { hasLmState, loadLmTensors, readLmStateJson } from '../src/model/train-lm-state.js';
import { disposeParams, toParams, type Gpt2Model } from '../src/model/weights.js';
import { renderModelCard, type EvalRecord, type TrainingRecord } from './model-card.js';
import { residualSpectra, rows, testSliceWindows, unigramCe, windowsCe, TEST_SLICE_FILE } from './model-eval-lib.js';
import { splitWindows } from './sotu-windows.js';

const PROMPT = 'The state of the Union is';

async function main(): Promise<void> {
  const { values } = parseArgs({ args: process.argv.slice(2).filter((a) => a !== '--'), options: { model: { type: 'string' }, work: { type: 'string' }, limit: { type: 'string' }, 'card-only': { type: 'boolean' }, 'spectrum-only': { type: 'boolean' } } });
  const dir = values.model ?? 'models/gpt2-sotu';
  const work = values.work ?? '.model-work';
  const trainingFile = join(dir, 'training.json');
  if (!existsSync(trainingFile)) throw new UserError(`${trainingFile}: not found; train the model first (npm run train:model).`);
  const training: TrainingRecord = JSON.parse(readFileSync(trainingFile, 'utf8'));
  const curve = () => readFileSync(join(dir, 'loss_curve.csv'), 'utf8');
  if (values['card-only']) {
    // Re-render README.md from the measurements already in eval.json (after a change to scripts/model-card.ts).
    const evalFile = join(dir, 'eval.json');
    if (!existsSync(evalFile)) throw new UserError(`${evalFile}: not found; run npm run eval:model without --card-only first.`);
    writeFileAtomic(join(dir, 'README.md'), renderModelCard(training, JSON.parse(readFileSync(evalFile, 'utf8')), curve()));
    console.log(`Wrote ${join(dir, 'README.md')} from ${evalFile}.`);
    return;
  }
  const backend = await initBackend('wasm');
  const t0 = performance.now();
  const spectrumOf = async (m: Gpt2Model) => {
    const w = testSliceWindows(m.config.n_positions);
    return { windows: w.length, rows: w.length * m.config.n_positions, hooks: await residualSpectra(m, w) };
  };
  if (values['spectrum-only']) {
    const evalFile = join(dir, 'eval.json');
    if (!existsSync(evalFile)) throw new UserError(`${evalFile}: not found; run npm run eval:model without --spectrum-only first.`);
    const m = await loadGpt2(dir);
    const record: EvalRecord = { ...JSON.parse(readFileSync(evalFile, 'utf8')), spectrum: await spectrumOf(m) };
    disposeParams(m.params);
    writeJsonAtomic(evalFile, record);
    writeFileAtomic(join(dir, 'README.md'), renderModelCard(training, record, curve()));
    console.log(`Wrote the residual-stream spectrum into ${evalFile} and ${join(dir, 'README.md')}.`);
    return;
  }

  const model = await loadGpt2(dir); // float16 on disk → float32 tensors
  const C = model.config.n_positions;
  const heldout = splitWindows('heldout', C, work);
  const train = splitWindows('train', C, work);

  // --limit N: only the first N held-out windows, for a quick check of this script (the card shows the count).
  const heldoutRows = rows(heldout).slice(0, values.limit ? Number(values.limit) : undefined);
  const progress = createProgress('held-out CE', heldoutRows.length, 'windows');
  const heldoutCe = await windowsCe(model, heldoutRows, 8, (d) => progress.update(d));
  progress.stop();
  const slice = testSliceWindows(C);
  const sliceCe = await windowsCe(model, slice);

  // The same slice with the float32 weights the float16 file was made from, when the work folder has them.
  let sliceCeF32: number | null = null;
  if (hasLmState(work)) {
    const j = readLmStateJson(work);
    if (j.step === training.steps) {
      const f32: Gpt2Model = { config: model.config, params: toParams(model.config, loadLmTensors(work, j).weights) };
      sliceCeF32 = await windowsCe(f32, slice);
      disposeParams(f32.params);
    }
  }

  const tok = gpt2Tokenizer();
  const prompt = [50256, ...tok.encode(PROMPT)];
  const sample = PROMPT + tok.decode(await generate(model, prompt, { maxNewTokens: 40 }));

  const record: EvalRecord = {
    model: dir,
    weights_dtype: 'float16 (loaded back as float32)',
    heldout: {
      split: 'SOTU held-out split: addresses of years ending in 5',
      addresses: heldout.documents,
      all_windows: heldoutRows.length === heldout.n,
      windows: heldoutRows.length,
      context: C,
      predicted_tokens: heldoutRows.length * (C - 1),
      ce: heldoutCe,
    },
    test_slice: { file: TEST_SLICE_FILE, windows: slice.length, predicted_tokens: slice.length * (C - 1), ce: sliceCe, ce_float32_weights: sliceCeF32 },
    baselines: { uniform: Math.log(GPT2_VOCAB_SIZE), unigram_train_split: unigramCe(train, heldout), unigram_predicted_tokens: heldout.n * (C - 1) },
    sample: { prompt: PROMPT, decoding: 'greedy, 40 new tokens, BOS first', text: sample },
    spectrum: await spectrumOf(model),
    backend: backend.detail,
    eval_wall_time_s: Math.round((performance.now() - t0) / 1000),
  };
  writeJsonAtomic(join(dir, 'eval.json'), record);
  writeFileAtomic(join(dir, 'README.md'), renderModelCard(training, record, curve()));
  console.log(`held-out CE ${heldoutCe.toFixed(4)} nats over ${record.heldout.predicted_tokens} tokens; test slice ${sliceCe.toFixed(4)}` +
    (sliceCeF32 === null ? '' : ` (float32 weights: ${sliceCeF32.toFixed(4)})`) + `; unigram baseline ${record.baselines.unigram_train_split.toFixed(3)}. ` +
    `Wrote ${join(dir, 'eval.json')} and ${join(dir, 'README.md')}.`);
  disposeParams(model.params);
}

main().catch((err) => {
  if (err instanceof UserError) {
    console.error(`error: ${err.message}`);
    process.exit(2);
  }
  throw err;
});
