import * as tf from '@tensorflow/tfjs-core';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { join } from 'node:path';
import { formatBytes, WASM_SAFE_BYTES } from '../backend/memory.js';
import { currentBackend } from '../backend/picker.js';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.js';
import { UserError } from '../io/errors.js';
import { readWindows } from '../model/corpus.js';
import { hubModelDir, isHubId } from '../model/hub.js';
import { loadGpt2, paramBytes, type LoadedGpt2 } from '../model/load.js';
import { gpt2Tokenizer, type Tokenizer } from '../model/tokenizer.js';
import { reconstruct, toTensors, disposeTensors } from '../sae/forward.js';
import { WEIGHTS_FILE } from '../sae/checkpoint.js';
import type { Recipe } from '../recipe/load.js';
import type { EvalSection } from '../recipe/schema.js';
import { writePerToken, writeSequences } from '../eval/arrow_outputs.js';
import { ceDiffCorrelation } from '../eval/correlation.js';
import { evalBatchBytes, evaluateSaes, type EngineSae } from '../eval/engine.js';
import { allAtOnce } from '../eval/finish.js';
import { changedKeys, INPUTS_FILE, modelFingerprint, readRunInputs, runInputs, sha256File, windowsSha256, type RunInputs, type SharedInputs } from '../eval/inputs.js';
import { gpt2ParamCount, referenceCe, type ReferenceCe } from '../eval/model_size.js';
import { mean } from '../eval/stats.js';
import { runMetrics, summaryCsv } from '../eval/run_metrics.js';
import { checkUniqueNames, evalCheckpointDirs, loadEvalCheckpoint, spliceSets, type EvalCheckpoint } from '../eval/runs.js';
import { generateAll, pairSamples, samplesMarkdown, sampleModes, type RunSamples, type SampleOptions } from '../eval/samples.js';
import type { AllAtOnce, RunMetrics, Summary } from '../eval/types.js';
import { createProgress, type Progress } from './progress.js';
import { info, warn } from './log.js';
import { requireSection, type Stage, type StageOptions } from './stage.js';

/**
 * `sae-train eval`: GPT-2 with each SAE spliced in, on held-out text. Writes, under eval.out, per run
 * <run>/metrics.json, per_token.arrow, sequences.arrow (+ samples.json, eval_inputs.json), and over all
 * runs summary.json, summary.csv, all_at_once.json, correlation.json, samples.md (src/eval/types.ts).
 * A run whose results exist for the same inputs is reused; --fresh redoes it. A run that fails (bad
 * checkpoint, wrong d_in or hook, NaN weights) is reported and the others' results are still written.
 */

const METRICS_FILE = 'metrics.json';
const SAMPLES_FILE = 'samples.json';
const SETS_INPUTS_FILE = 'all_at_once.inputs.json';
const REFERENCES_FILE = 'references.json';

interface Failure {
  run: string;
  dir: string;
  error: string;
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** Eval windows from eval.corpus; fewer than asked is said, not fatal. */
export function loadEvalWindows(section: EvalSection, model: LoadedGpt2, tok: Tokenizer): Int32Array[] {
  const c = model.config;
  if (section.context_size > c.n_positions)
    throw new UserError(`eval.context_size ${section.context_size} exceeds the model's n_positions (${c.n_positions}, ${model.name}). Use context_size: ${c.n_positions} or less.`);
  if (section.context_size < 2) throw new UserError('eval.context_size must be at least 2 (one predicted token per window).');
  const want = Math.ceil(section.tokens / section.context_size);
  const { windows, stats, exhausted } = readWindows(section.corpus, tok, { contextSize: section.context_size, prependBos: true, bos: c.bos_token_id }, want, 'eval.corpus');
  if (exhausted)
    warn(`eval.corpus holds ${stats.tokens.toLocaleString('en-US')} tokens: ${windows.length} window(s) of ${section.context_size} (${(windows.length * section.context_size).toLocaleString('en-US')} tokens), fewer than the ${section.tokens.toLocaleString('en-US')} eval.tokens asked for. Evaluating what there is; add held-out text for tighter numbers.`);
  let maxId = 0;
  for (const w of windows) for (const t of w) if (t > maxId) maxId = t;
  if (maxId >= c.vocab_size)
    throw new UserError(`model ${model.name} has a vocabulary of ${c.vocab_size} tokens, but eval.corpus tokenized with GPT-2's BPE has ids up to ${maxId}. Use a GPT-2-family model (vocab_size 50257).`);
  return windows;
}

function checkBatchMemory(model: LoadedGpt2, B: number, T: number): void {
  if (currentBackend().name !== 'wasm') return;
  const fixed = paramBytes(model.config);
  const per = evalBatchBytes(model.config, 1, T);
  const need = fixed + B * per;
  if (need > WASM_SAFE_BYTES) {
    const fit = Math.floor((WASM_SAFE_BYTES - fixed) / per);
    throw new UserError(`eval.batch_size ${B} at context ${T} needs ~${formatBytes(need)} on the wasm backend (limit ${formatBytes(WASM_SAFE_BYTES)}). ` +
      (fit >= 1 ? `Use batch_size: ${fit} or less.` : `Lower eval.context_size, or use the tensorflow backend.`));
  }
}

function fmt(v: number, d = 4): string {
  return Number.isFinite(v) ? v.toFixed(d) : 'n/a';
}

function describeRun(m: RunMetrics): string {
  return `  ${m.run}: CE ${fmt(m.ce_clean)} → ${fmt(m.ce_spliced)} (${m.ce_diff >= 0 ? "+" : ""}${fmt(m.ce_diff)}), ce_recovered ${fmt(m.ce_recovered, 3)}, KL ${fmt(m.kl_div)}, explained_variance ${fmt(m.explained_variance, 3)}, L0 ${fmt(m.l0, 1)}`;
}

function progressFor(label: string, W: number, T: number): { update: (done: number) => void; stop: () => void } {
  let bar: Progress | undefined;
  return {
    update: (done) => (bar ??= createProgress(label, W * T, 'tok')).update(done * T),
    stop: () => bar?.stop(),
  };
}

/** Reference models' clean CE on the eval windows, cached in references.json by model and windows. */
async function referenceCes(section: EvalSection, model: LoadedGpt2, windows: readonly Int32Array[], shared: SharedInputs, fresh: boolean): Promise<ReferenceCe[]> {
  if (!section.reference_models.length) return [];
  const path = join(section.out, REFERENCES_FILE);
  const key = { windows_sha256: shared.windows_sha256 };
  const cached = fresh ? undefined : readJson<{ key: typeof key; refs: (ReferenceCe & { fingerprint: unknown })[] }>(path);
  const out: (ReferenceCe & { fingerprint: unknown })[] = [];
  for (const spec of section.reference_models) {
    const fingerprint = modelFingerprint(spec, !existsSync(spec) && isHubId(spec) ? hubModelDir(spec) : spec);
    const hit = cached && JSON.stringify(cached.key) === JSON.stringify(key) ? cached.refs.find((r) => JSON.stringify(r.fingerprint) === JSON.stringify(fingerprint)) : undefined;
    if (hit) {
      out.push(hit);
      continue;
    }
    info(`reference model ${spec}: clean CE on the eval tokens…`);
    const r = await referenceCe(spec, windows, section.batch_size);
    info(`  ${spec}: ${r.params.toLocaleString('en-US')} parameters, CE ${fmt(r.ce)}`);
    out.push({ ...r, fingerprint });
  }
  writeJsonAtomic(path, { key, refs: out });
  return out.map(({ model: m, params, ce }) => ({ model: m, params, ce }));
}

export async function runEval(recipe: Recipe, opts: StageOptions): Promise<void> {
  const section = requireSection(recipe, 'eval');
  if (!recipe.model) throw new UserError(`${recipe.path}: eval needs model: (a local GPT-2 folder or a hub id such as gpt2) to splice the SAEs into.`);
  // The model as the SAEs saw it: the recipe's harvest processing (TransformerLens fold_ln / centering), if any.
  const model = await loadGpt2(recipe.model, { foldLn: recipe.harvest?.fold_ln, centerWritingWeights: recipe.harvest?.center_writing_weights });
  const c = model.config;
  const tok = gpt2Tokenizer();
  const decode = c.vocab_size <= tok.vocabSize ? (ids: readonly number[]) => tok.decode(ids) : undefined;
  const windows = loadEvalWindows(section, model, tok);
  const T = section.context_size;
  checkBatchMemory(model, section.batch_size, T);

  const failures: Failure[] = [];
  const dirs = evalCheckpointDirs(section.checkpoints, recipe.train?.out, recipe.path, (m) => warn(m));
  checkUniqueNames(dirs);
  const loaded: EvalCheckpoint[] = [];
  for (const dir of dirs) {
    try {
      loaded.push(loadEvalCheckpoint(dir, c, model));
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      failures.push({ run: dir, dir, error: err.message });
    }
  }

  const shared: SharedInputs = {
    model: { ...modelFingerprint(recipe.model, model.dir), processing: model.processing },
    windows_sha256: windowsSha256(windows),
    windows: windows.length,
    context_size: T,
    topk: [...section.topk],
    drop_lowest: [...section.drop_lowest],
    samples: { prompts: [...section.prompts], max_new_tokens: section.max_new_tokens, temperature: section.temperature, seed: section.sample_seed },
    reference_models: [...section.reference_models],
  };
  const inputs = new Map<string, RunInputs>();
  const reused = new Map<string, RunMetrics>();
  const todo: EvalCheckpoint[] = [];
  for (const ck of loaded) {
    const runDir = join(section.out, ck.name);
    const want = runInputs(shared, ck.dir, sha256File(join(ck.dir, WEIGHTS_FILE)));
    inputs.set(ck.name, want);
    const have = readRunInputs(runDir);
    const metrics = readJson<RunMetrics>(join(runDir, METRICS_FILE));
    if (have && have.checkpoint !== want.checkpoint && !opts.overwrite) {
      failures.push({ run: ck.name, dir: ck.dir, error: `${runDir} holds the eval of another checkpoint (${have.checkpoint}). Use --overwrite to replace it, or another eval.out.` });
      continue;
    }
    if (!opts.fresh && have && metrics && changedKeys(have, want).length === 0) {
      reused.set(ck.name, metrics);
      continue;
    }
    if (have && metrics && !opts.fresh) info(`${ck.name}: inputs changed (${changedKeys(have, want).join(', ')}): evaluating again.`);
    todo.push(ck);
  }
  if (reused.size) info(`reusing ${reused.size} finished eval(s) with the same inputs (--fresh redoes them): ${[...reused.keys()].join(', ')}`);

  const evaluated = loaded.filter((ck) => reused.has(ck.name) || todo.includes(ck));
  const sets = spliceSets(section.splice_all, evaluated.map((ck) => ({ name: ck.name, dir: ck.dir, cfg: ck.cfg })), recipe.path);
  const setsInputsPath = join(section.out, SETS_INPUTS_FILE);
  const setKey = (names: string[]) => JSON.stringify(names.map((n) => inputs.get(n)));
  const cachedSets = opts.fresh ? undefined : readJson<Record<string, AllAtOnce>>(setsInputsPath);
  const setsTodo = sets.filter((s) => !cachedSets?.[setKey(s)]);
  const references = await referenceCes(section, model, windows, shared, opts.fresh);

  const results = new Map<string, RunMetrics>(reused);
  const setResults = new Map<string, AllAtOnce>();
  for (const s of sets) if (cachedSets?.[setKey(s)]) setResults.set(setKey(s), cachedSets[setKey(s)]);
  const samples = new Map<string, RunSamples>();

  if (todo.length || setsTodo.length) {
    const byName = new Map(evaluated.map((ck) => [ck.name, ck]));
    const inSets = new Set(setsTodo.flat());
    const saes: EngineSae[] = [
      ...todo.map((ck) => ({ name: ck.name, hook: ck.cfg.hook_name, weights: ck.weights })),
      ...[...inSets].filter((n) => !todo.some((ck) => ck.name === n)).map((n) => ({ name: n, hook: byName.get(n)!.cfg.hook_name, weights: byName.get(n)!.weights, onlyInSets: true })),
    ];
    info(`eval: ${todo.length} run(s)${setsTodo.length ? ` + ${setsTodo.length} all-at-once set(s)` : ''} on ${windows.length} window(s) × ${T} tokens, batch ${section.batch_size}`);
    const bars = { splice: progressFor('eval: splice', windows.length, T), 'mean-ablation': progressFor('eval: mean ablation', windows.length, T) };
    const res = await evaluateSaes(model, windows, saes, {
      batchSize: section.batch_size, topk: section.topk, dropLowest: section.drop_lowest, sets: setsTodo,
      meanAblation: todo.length > 0, propagation: true,
      onProgress: (phase, done) => bars[phase].update(done),
    });
    bars.splice.stop();
    bars['mean-ablation'].stop();
    // The evaluated model itself is a reference point too (its clean CE), unless listed already.
    const refs = references.length && !references.some((r) => resolve(r.model) === resolve(recipe.model!))
      ? [...references, { model: recipe.model, params: gpt2ParamCount(c), ce: mean(res.ceClean) }]
      : references;
    for (const ck of todo) {
      const acc = res.runs.get(ck.name)!;
      if (acc.error) {
        failures.push({ run: ck.name, dir: ck.dir, error: acc.error });
        continue;
      }
      results.set(ck.name, runMetrics(ck, res, acc, windows, decode, refs));
    }
    // Samples: clean once, spliced per run, same seed.
    const sampleOpts: SampleOptions = { prompts: section.prompts, maxNewTokens: section.max_new_tokens, temperature: section.temperature, seed: section.sample_seed };
    const okTodo = todo.filter((ck) => results.has(ck.name));
    if (okTodo.length && section.prompts.length) {
      const promptIds = section.prompts.map((p) => [c.bos_token_id, ...tok.encode(p, { allowSpecial: false })].filter((id) => id < c.vocab_size));
      const steps = section.prompts.length * sampleModes(sampleOpts).length * (okTodo.length + 1);
      const bar = createProgress('eval: samples', steps, 'gen');
      let done = 0;
      const step = () => bar.update(++done);
      const clean = generateAll(model, promptIds, sampleOpts, undefined, step);
      for (const ck of okTodo) {
        const p = toTensors(ck.weights);
        const dIn = ck.cfg.d_in;
        try {
          const spliced = generateAll(model, promptIds, sampleOpts, { [ck.cfg.hook_name]: (x) => tf.reshape(reconstruct(tf.reshape(x, [-1, dIn]) as tf.Tensor2D, p), x.shape) }, step);
          samples.set(ck.name, { run: ck.name, hook: ck.cfg.hook_name, samples: pairSamples(sampleOpts, clean, spliced) });
        } finally {
          disposeTensors(p);
        }
      }
      bar.stop();
    }
    // Per-run files, metrics.json last (its presence with matching eval_inputs.json marks the run done).
    for (const ck of okTodo) {
      const runDir = join(section.out, ck.name);
      rmSync(join(runDir, METRICS_FILE), { force: true });
      const acc = res.runs.get(ck.name)!;
      const hook = res.hooks.get(ck.cfg.hook_name)!;
      writePerToken(join(runDir, 'per_token.arrow'), windows, res.ceClean, acc.ceSpliced, acc.kl);
      writeSequences(join(runDir, 'sequences.arrow'), windows.length, T, res.ceClean, acc.ceSpliced, hook.windowMeanAct, hook.dIn);
      writeJsonAtomic(join(runDir, SAMPLES_FILE), samples.get(ck.name) ?? { run: ck.name, hook: ck.cfg.hook_name, samples: [] });
      writeJsonAtomic(join(runDir, INPUTS_FILE), inputs.get(ck.name));
      writeJsonAtomic(join(runDir, METRICS_FILE), results.get(ck.name));
    }
    setsTodo.forEach((names, i) => {
      const acc = res.sets[i];
      if (acc.error) {
        warn(`all-at-once set ${names.join(' + ')}: ${acc.error}`);
        return;
      }
      const singles = names.map((n) => results.get(n)?.ce_diff ?? NaN);
      setResults.set(setKey(names), allAtOnce(res, acc, singles));
    });
  }

  // Files over all runs, rebuilt from every run's results (reused ones included).
  const order = evaluated.map((ck) => ck.name).filter((n) => results.has(n));
  const runs = order.map((n) => results.get(n)!);
  if (runs.length) {
    info(`\nresults (${windows.length * T} tokens):`);
    for (const m of runs) info(describeRun(m));
    const summary: Summary = { model: recipe.model, corpus: [...section.corpus], tokens: windows.length * T, backend: currentBackend().detail, runs };
    writeJsonAtomic(join(section.out, 'summary.json'), summary);
    writeFileAtomic(join(section.out, 'summary.csv'), summaryCsv(runs));
    const aao = sets.map((s) => setResults.get(setKey(s))).filter((x): x is AllAtOnce => !!x);
    writeJsonAtomic(join(section.out, 'all_at_once.json'), aao);
    writeJsonAtomic(setsInputsPath, Object.fromEntries(sets.filter((s) => setResults.has(setKey(s))).map((s) => [setKey(s), setResults.get(setKey(s))])));
    for (const a of aao) info(`  all at once (${a.runs.join(' + ')}): CE ${fmt(a.ce_clean)} → ${fmt(a.ce_spliced_all)}, KL ${fmt(a.kl_div_all)}; Σ single CE increases ${fmt(a.sum_single_ce_diff)}, ratio ${fmt(a.additivity_ratio, 2)}`);
    writeJsonAtomic(join(section.out, 'correlation.json'), ceDiffCorrelation(runs.map((m) => ({ run: m.run, perSequence: m.ce_diff_distribution.per_sequence }))));
    const runSamples = order.map((n) => samples.get(n) ?? readJson<RunSamples>(join(section.out, n, SAMPLES_FILE))).filter((s): s is RunSamples => !!s);
    writeFileAtomic(join(section.out, 'samples.md'), samplesMarkdown(runSamples, decode ?? ((ids) => ids.join(' ')), { model: recipe.model, maxNewTokens: section.max_new_tokens }));
    info(`wrote ${section.out}/ (summary.json, summary.csv, all_at_once.json, correlation.json, samples.md, and per run metrics.json, per_token.arrow, sequences.arrow)`);
  }
  if (failures.length) {
    const lines = failures.map((f) => `  ${f.run}: ${f.error}`).join('\n');
    throw new UserError(`eval failed for ${failures.length} of ${dirs.length} checkpoint(s) (the others' results are written):\n${lines}`);
  }
}

export const evalStage: Stage = {
  name: 'eval',
  describe: 'splice each SAE into GPT-2 on held-out text: reconstruction, CE/KL, all-at-once, per-token CE-diff, propagation, top-k/drop-lowest, samples',
  tensors: true,
  run: runEval,
};
