import { readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { currentBackend } from '../backend/picker.js';
import { writeJsonAtomic } from '../io/atomic.js';
import { UserError } from '../io/errors.js';
import { loadGpt2 } from '../model/load.js';
import { gpt2Tokenizer } from '../model/tokenizer.js';
import type { Recipe } from '../recipe/load.js';
import { writePerToken, writeSequences } from './arrow_outputs.js';
import { evaluateSaes, type EngineSae } from './engine.js';
import { planAttention, runAttention } from './attention/stage.js';
import { allAtOnce } from './finish.js';
import { INPUTS_FILE, modelFingerprint, windowsSha256, type SharedInputs } from './inputs.js';
import { gpt2ParamCount } from './model_size.js';
import { referenceCes } from './references.js';
import { METRICS_FILE, planReuse } from './reuse.js';
import { runMetrics } from './run_metrics.js';
import { checkUniqueNames, evalCheckpointDirs, loadEvalCheckpoint, spliceSets, type EvalCheckpoint } from './runs.js';
import { checkpointProcessing, chooseProcessing, recipeProcessing } from './processing.js';
import { sampleModes, spliceSamples, type SampleOptions } from './samples.js';
import { mean } from './stats.js';
import type { AllAtOnce, RunMetrics } from './types.js';
import { checkBatchMemory, loadEvalWindows, saeParamBytes } from './windows.js';
import { describeRun, describeSet, SAMPLES_FILE, writeOverall } from './write_all.js';
import { writeEvalSpectrum } from './spectrum-out.js';
import { createProgress, type Progress } from '../ui/progress.js';
import { info, warn } from '../ui/log.js';
import { requireSection, type StageOptions } from '../recipe/section.js';
import { resolveCheckpoints } from '../sae/sources.js';
import { featuresConfig } from '../features/config.js';
import { evalFeatures } from '../features/eval_features.js';
import { evalDirsOfPart } from './parts.js';

/**
 * `sae-train eval`: GPT-2 with each SAE spliced in, on held-out text. Writes, under eval.out, per run
 * <run>/metrics.json, per_token.arrow, sequences.arrow (+ samples.json, eval_inputs.json), and over all
 * runs summary.json, summary.csv, all_at_once.json, correlation.json, samples.md (src/eval/types.ts).
 * A run whose results exist for the same inputs is reused; --fresh redoes it. A run that fails (bad
 * checkpoint, wrong d_in or hook, NaN weights) is reported and the others' results are still written.
 */

/** Cached all-at-once results, keyed by their members' inputs. */
const SETS_CACHE_FILE = 'all_at_once.inputs.json';

interface Failure {
  run: string;
  error: string;
}

/** Bars of phases that run one after another, each shown from its first update; its rate counts from the previous phase's last update. */
function phaseBars<K extends string>(labels: Record<K, string>, total: number, scale: number): Record<K, { update: (done: number) => void; stop: () => void }> {
  let lastActivity = Date.now();
  const one = (label: string) => {
    let bar: Progress | undefined;
    return {
      update: (done: number) => {
        (bar ??= createProgress(label, total * scale, 'tok', 0, lastActivity)).update(Math.round(done * scale));
        lastActivity = Date.now();
      },
      stop: () => bar?.stop(),
    };
  };
  return Object.fromEntries(Object.entries(labels).map(([k, l]) => [k, one(l as string)])) as Record<K, ReturnType<typeof one>>;
}

export async function runEval(recipe: Recipe, opts: StageOptions): Promise<void> {
  const section = requireSection(recipe, 'eval');
  const modelSpec = recipe.model;
  if (!modelSpec) throw new UserError(`${recipe.path}: eval needs model: (a local GPT-2 folder or a hub id such as gpt2) to splice the SAEs into.`);
  // The model as the SAEs saw it (TransformerLens fold_ln / centering): theirs or the recipe's (src/eval/processing.ts).
  const sources = await resolveCheckpoints(section.checkpoints, recipe.hook_names);
  const dirs = evalCheckpointDirs(sources.dirs, recipe.train?.out, recipe.path, warn);
  checkUniqueNames(dirs);
  const proc = chooseProcessing(recipe.sae_processing, recipeProcessing(recipe.harvest), checkpointProcessing(dirs, sources.opts));
  for (const n of proc.notes) warn(n);
  const model = await loadGpt2(modelSpec, { foldLn: proc.label.includes('fold_ln'), centerWritingWeights: proc.label.includes('center_writing_weights') });
  const c = model.config;
  const tok = gpt2Tokenizer();
  const decode = c.vocab_size <= tok.vocabSize ? (ids: readonly number[]) => tok.decode(ids) : (ids: readonly number[]) => ids.map((i) => `<${i}>`).join('');
  const windows = loadEvalWindows(section, model, tok, warn);
  const W = windows.length, T = section.context_size;

  // Checkpoints: load and check each against the model; a bad one is a failure, not the end.
  const failures: Failure[] = [];
  const loaded: EvalCheckpoint[] = [];
  for (const dir of opts.part ? evalDirsOfPart(dirs, opts.part, info) : dirs) {
    try {
      loaded.push(loadEvalCheckpoint(dir, c, model, sources.opts(dir), proc.fix));
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      failures.push({ run: dir, error: err.message });
    }
  }
  const attention = planAttention(section, recipe.path, c, tok, loaded.map((ck) => ({ name: ck.name, hook: ck.cfg.hook_name })), warn);

  // What is already done for the same inputs.
  const shared: SharedInputs = {
    model: { ...modelFingerprint(modelSpec, model.dir), processing: model.processing },
    windows_sha256: windowsSha256(windows),
    windows: W,
    context_size: T,
    topk: [...section.topk],
    drop_lowest: [...section.drop_lowest],
    samples: { prompts: [...section.prompts], max_new_tokens: section.max_new_tokens, temperature: section.temperature, seed: section.sample_seed },
    reference_models: [...section.reference_models],
    features: featuresConfig(section.features),
  };
  const { inputs, reused, todo, conflicts } = planReuse(loaded, shared, section.out, opts, info);
  failures.push(...conflicts);
  if (reused.size) info(`reusing ${reused.size} finished eval(s) with the same inputs (--fresh redoes them): ${[...reused.keys()].join(', ')}`);
  const evaluated = loaded.filter((ck) => reused.has(ck.name) || todo.includes(ck));
  const byName = new Map(evaluated.map((ck) => [ck.name, ck]));
  // A part evaluates its checkpoints alone; the finishing pass splices the all-at-once sets and writes the summaries.
  const sets = opts.part ? [] : spliceSets(section.splice_all, evaluated, recipe.path);
  const setKey = (names: string[]) => JSON.stringify(names.map((n) => inputs.get(n)));
  let setCache: Record<string, AllAtOnce> = {};
  try {
    if (!opts.fresh) setCache = JSON.parse(readFileSync(join(section.out, SETS_CACHE_FILE), 'utf8'));
  } catch {
    setCache = {};
  }
  const setsTodo = sets.filter((s) => !setCache[setKey(s)]);
  const saeBytes = Math.max(0, ...todo.map((ck) => saeParamBytes(ck.weights)), ...setsTodo.map((s) => s.reduce((a, n) => a + saeParamBytes(byName.get(n)!.weights), 0)));
  if (todo.length || setsTodo.length) checkBatchMemory(model, section.batch_size, T, saeBytes);
  const references = await referenceCes(section.reference_models, windows, shared.windows_sha256, section.out, section.batch_size, opts.fresh, info);

  const results = new Map<string, RunMetrics>(reused);
  if (todo.length || setsTodo.length) {
    const saes: EngineSae[] = todo.map((ck) => ({ name: ck.name, hook: ck.cfg.hook_name, weights: ck.weights }));
    for (const n of new Set(setsTodo.flat()))
      if (!todo.some((ck) => ck.name === n)) saes.push({ name: n, hook: byName.get(n)!.cfg.hook_name, weights: byName.get(n)!.weights, onlyInSets: true });
    info(`eval: ${todo.length} run(s)${setsTodo.length ? ` + ${setsTodo.length} all-at-once set(s)` : ''} on ${W} window(s) × ${T} tokens, batch ${section.batch_size}`);
    const features = evalFeatures(shared.features ?? null, todo, model, windows);
    const bars = phaseBars({ splice: 'eval: splice', 'mean-ablation': 'eval: mean ablation' }, W, T);
    const res = await evaluateSaes(model, windows, saes, {
      batchSize: section.batch_size, topk: section.topk, dropLowest: section.drop_lowest, sets: setsTodo,
      meanAblation: todo.length > 0, propagation: true, onProgress: (phase, done) => bars[phase].update(done), onFeatures: features.onFeatures,
    });
    bars.splice.stop();
    bars['mean-ablation'].stop();

    // The evaluated model is a reference point too (its clean CE), unless listed already.
    const refs = references.length && !references.some((r) => resolve(r.model) === resolve(modelSpec))
      ? [...references, { model: modelSpec, params: gpt2ParamCount(c), ce: mean(res.ceClean) }]
      : references;
    const done: EvalCheckpoint[] = [];
    for (const ck of todo) {
      const acc = res.runs.get(ck.name)!;
      if (acc.error) failures.push({ run: ck.name, error: acc.error });
      else {
        results.set(ck.name, runMetrics(ck, res, acc, windows, decode, refs));
        done.push(ck);
      }
    }

    const sampleOpts: SampleOptions = { prompts: section.prompts, maxNewTokens: section.max_new_tokens, temperature: section.temperature, seed: section.sample_seed };
    let samples: Map<string, unknown> = new Map();
    if (done.length && section.prompts.length) {
      const promptIds = section.prompts.map((p) => [c.bos_token_id, ...tok.encode(p, { allowSpecial: false })]);
      const bar = createProgress('eval: samples', section.prompts.length * sampleModes(sampleOpts).length * (done.length + 1), 'gen');
      let steps = 0;
      const list = await spliceSamples(model, promptIds, done.map((ck) => ({ name: ck.name, hook: ck.cfg.hook_name, weights: ck.weights })), sampleOpts, () => bar.update(++steps));
      bar.stop();
      samples = new Map(list.map((s) => [s.run, s]));
    }

    // Per-run files, metrics.json last: with a matching eval_inputs.json it marks the run finished.
    for (const ck of done) {
      const runDir = join(section.out, ck.name);
      rmSync(join(runDir, METRICS_FILE), { force: true });
      const acc = res.runs.get(ck.name)!;
      const hook = res.hooks.get(ck.cfg.hook_name)!;
      writePerToken(join(runDir, 'per_token.arrow'), windows, res.ceClean, acc.ceSpliced, acc.kl);
      writeSequences(join(runDir, 'sequences.arrow'), W, T, res.ceClean, acc.ceSpliced, hook.windowMeanAct, hook.dIn);
      writeJsonAtomic(join(runDir, SAMPLES_FILE), samples.get(ck.name) ?? { run: ck.name, hook: ck.cfg.hook_name, samples: [] });
      await features.writeRun(runDir, { name: ck.name, hook: ck.cfg.hook_name, weights: ck.weights });
      writeJsonAtomic(join(runDir, INPUTS_FILE), inputs.get(ck.name));
      writeJsonAtomic(join(runDir, METRICS_FILE), results.get(ck.name));
    }
    features.dispose();
    setsTodo.forEach((names, i) => {
      const acc = res.sets[i];
      if (acc.error) warn(`all-at-once set ${names.join(' + ')}: ${acc.error}`);
      else setCache[setKey(names)] = allAtOnce(res, acc, names.map((n) => results.get(n)?.ce_diff ?? NaN));
    });
  }

  if (attention) failures.push(...(await runAttention(attention, { model, out: section.out, fresh: opts.fresh, modelFingerprint: shared.model, runs: evaluated.filter((ck) => results.has(ck.name)), inputs, sets, info, warn })));
  const runs = evaluated.map((ck) => results.get(ck.name)).filter((m): m is RunMetrics => !!m);
  if (runs.length && !opts.part) {
    const aao = sets.map((s) => setCache[setKey(s)]).filter((a): a is AllAtOnce => !!a);
    writeJsonAtomic(join(section.out, SETS_CACHE_FILE), Object.fromEntries(sets.filter((s) => setCache[setKey(s)]).map((s) => [setKey(s), setCache[setKey(s)]])));
    writeOverall(section.out, { model: modelSpec, corpus: [...section.corpus], tokens: W * T, backend: currentBackend().detail, runs }, aao, decode, section.max_new_tokens);
    info(`\nresults (${W * T} tokens):`);
    for (const m of runs) info(describeRun(m));
    for (const a of aao) info(describeSet(a));
    writeEvalSpectrum(section.out, evaluated.map((ck) => ck.cfg));
    info(`wrote ${section.out}/: summary.json, summary.csv, all_at_once.json, correlation.json, samples.md, and per run metrics.json, per_token.arrow, sequences.arrow${shared.features ? ', features.arrow, feature_contexts.arrow, features.json' : ''}`);
  }
  if (failures.length)
    throw new UserError(`eval failed for ${failures.length} of ${dirs.length} checkpoint(s) (the others' results are written):\n${failures.map((f) => `  ${f.run}: ${f.error}`).join('\n')}`);
}
