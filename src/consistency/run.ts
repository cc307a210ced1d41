import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.js';
import { UserError, fsError } from '../io/errors.js';
import { readSafetensors } from '../io/safetensors.js';
import { isCheckpoint, listCheckpoints, loadCheckpoint, readCfg, SPARSITY_FILE, WEIGHTS_FILE, weightsFileOf, type LoadOptions } from '../sae/checkpoint.js';
import { resolveCheckpoints } from '../sae/sources.js';
import { manifestPath } from '../activations/manifest.js';
import { DEFAULT_MATCH } from './consistency.js';
import { consistencyMarkdown } from './consistency-md.js';
import { CONSISTENCY_FORMAT, type ConsistencyFile, type ConsistencyRun, type SeedPair, type SizePair } from './consistency-types.js';
import { seedPairConsistency, sizePairSplitting } from './pair-consistency.js';
import { hookSpectra } from '../activations/cache-spectrum.js';
import { CovarianceSource, ownInitMmcs, pairChance, sizePairRaw, rawScores } from './chance-run.js';
import { logSpectrum } from '../activations/spectrum-log.js';
import { seedPairs, sizePairs, type PairableRun } from './pairing.js';
import type { Recipe } from '../recipe/load.js';
import { createProgress } from '../ui/progress.js';
import { info, warn } from '../ui/log.js';
import { requireSection, type StageOptions } from '../recipe/section.js';
import { VERSION } from '../version.js';
import { consistencyUnits, pairsOfPart, partJsonPath, partJsonPaths, removePartJsons } from './consistency-parts.js';
import type { StageUnits } from '../parallel/units.js';

/** Bumped when the computation changes, so that older results are not reused. */
const ALGORITHM = 'consistency/2';
const CHILD_THRESHOLD = 0.5;
export const CONSISTENCY_JSON = 'consistency.json';
export const CONSISTENCY_MD = 'consistency.md';

export const packageVersion = (): string => `sae-train ${VERSION}`;

function sha256File(path: string): string {
  const h = createHash('sha256');
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw fsError(err, path, 'hash a checkpoint file');
  }
  try {
    const buf = Buffer.allocUnsafe(1 << 22);
    for (;;) {
      const r = readSync(fd, buf, 0, buf.length, null);
      if (r === 0) break;
      h.update(buf.subarray(0, r));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** A run's display name: its folder, or `<run>__finetuned-<method>` for a finetune (as eval names them). */
export function checkpointName(dir: string): string {
  const b = basename(dir.replace(/[\\/]+$/, ''));
  return b.startsWith('finetuned-') ? `${basename(dirname(dir))}__${b}` : b;
}

interface Input extends PairableRun {
  sha256: string;
  hasSparsity: boolean;
  /** How to load it (its hook from the recipe's hook_names). */
  load: LoadOptions;
}

/** The checkpoints to compare: those named, else every finished run (finetunes left out) under train.out. */
function gatherRuns(recipe: Recipe, entries: readonly string[], opts: (dir: string) => LoadOptions): Input[] {
  const sec = requireSection(recipe, 'consistency');
  let dirs: string[];
  const named = sec.checkpoints.length > 0;
  if (named) {
    dirs = [...entries];
    for (const d of dirs)
      if (!isCheckpoint(d)) throw new UserError(`${recipe.path}: consistency.checkpoints: "${d}" is not a checkpoint folder (needs cfg.json and ${WEIGHTS_FILE}). Fix the path or remove it.`);
  } else {
    if (!recipe.train) throw new UserError(`${recipe.path}: consistency: no checkpoints named and no train: section to find runs in. Example: checkpoints: [checkpoints/quickstart/run-a, checkpoints/quickstart/run-b]`);
    dirs = listCheckpoints(recipe.train.out);
    if (dirs.length === 0) throw new UserError(`${recipe.train.out}: no checkpoints found. Run \`sae-train train ${recipe.path}\` first.`);
  }
  const runs: Input[] = [];
  for (const dir of dirs) {
    if (existsSync(join(dir, 'trainer_state'))) {
      warn(`${dir}: still training (trainer_state/ present); left out of the comparison.`);
      continue;
    }
    const cfg = readCfg(dir, opts(dir));
    if (!named && (cfg.parent || cfg.finetune_method)) continue;
    const hasSparsity = existsSync(join(dir, SPARSITY_FILE));
    const sha = createHash('sha256').update(sha256File(weightsFileOf(dir)));
    if (hasSparsity) sha.update(sha256File(join(dir, SPARSITY_FILE)));
    runs.push({ name: checkpointName(dir), dir, cfg, sha256: sha.digest('hex'), hasSparsity, load: opts(dir) });
  }
  return runs;
}

function pairHash(kind: string, a: Input, b: Input, thresholds: readonly number[]): string {
  // The chance baselines depend on the cache the runs were trained on: its content (not its path, so that the
  // same cache elsewhere gives the same hash) and whether it can still be read.
  const cache = { sha: b.cfg.cache_manifest_sha256 ?? null, found: !!b.cfg.cache && existsSync(manifestPath(b.cfg.cache)) };
  return createHash('sha256').update(JSON.stringify({ kind, ALGORITHM, a: a.sha256, b: b.sha256, thresholds, match: { ...DEFAULT_MATCH }, child: CHILD_THRESHOLD, cache })).digest('hex');
}

function readPrevious(path: string): ConsistencyFile | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const c = JSON.parse(readFileSync(path, 'utf8')) as ConsistencyFile;
    return c.format === CONSISTENCY_FORMAT ? c : undefined;
  } catch {
    warn(`${path}: unreadable; computing every pair again.`);
    return undefined;
  }
}

function readSparsity(dir: string): Float32Array {
  const path = join(dir, SPARSITY_FILE);
  const t = readSafetensors(path).tensors.sparsity;
  if (!t) throw new UserError(`${path}: has no tensor "sparsity" (log10 firing frequency [d_sae]). Re-run training to rewrite it, or delete the file.`);
  return t.data;
}

const runInfo = (r: Input): ConsistencyRun => ({
  name: r.name, checkpoint: r.dir, hook: r.cfg.hook_name, layer: r.cfg.hook_layer, d_sae: r.cfg.d_sae, seed: r.cfg.seed,
  l1_coefficient: r.cfg.l1_coefficient, lr: r.cfg.lr, finetune_method: r.cfg.finetune_method ?? null,
});

/** "; MMCS against a null dictionary 0.812, against b's init 0.301, above chance +0.150" for the console. */
function chanceNote(c: SeedPair['chance']): string {
  const r = c?.scores.mmcs;
  if (!r) return '';
  const sign = (v: number) => `${v >= 0 ? '+' : ''}${v.toFixed(3)}`;
  return `; MMCS against a null dictionary ${r.null === null ? '–' : r.null.toFixed(3)}, against b's init ${r.init === null ? '–' : r.init.toFixed(3)}, above chance ${sign(r.above_chance)}`;
}

/**
 * `sae-train consistency`: every pair of runs that differ only in seed (MMCS both ways, optimal matching on
 * decoder and encoder, consistency by density) and every size step (feature splitting). Writes
 * consistency.json after each pair (a killed run keeps finished pairs) and consistency.md at the end; pairs
 * whose inputs (weights, sparsity, settings) hash the same as last time are reused.
 */
export async function runConsistency(recipe: Recipe, opts: StageOptions): Promise<ConsistencyFile> {
  const sec = requireSection(recipe, 'consistency');
  const thresholds = [...sec.thresholds];
  const sources = await resolveCheckpoints(sec.checkpoints, recipe.hook_names);
  const runs = gatherRuns(recipe, sources.dirs, sources.opts);
  const seeds = seedPairs(runs) as [Input, Input][];
  const sizes = sizePairs(runs) as [Input, Input][];
  // A part writes its pairs to part-<i>.json; the finishing pass reuses them all (consistency-parts.ts).
  const jsonPath = opts.part ? partJsonPath(sec.out, opts.part) : join(sec.out, CONSISTENCY_JSON);
  const prevFiles = opts.fresh ? [] : [readPrevious(jsonPath), ...(opts.part ? [] : partJsonPaths(sec.out).map(readPrevious))];
  const prevSeed = new Map(prevFiles.flatMap((f) => f?.seed_pairs ?? []).map((p) => [p.inputs_sha256, p]));
  const prevSize = new Map(prevFiles.flatMap((f) => f?.size_pairs ?? []).map((p) => [p.inputs_sha256, p]));
  info(`consistency: ${runs.length} run(s), ${seeds.length} seed pair(s), ${sizes.length} size pair(s) → ${jsonPath}`);

  const out: ConsistencyFile = { format: CONSISTENCY_FORMAT, created_by: packageVersion(), thresholds, runs: runs.map(runInfo), seed_pairs: [], size_pairs: [] };
  out.spectrum = hookSpectra(runs.map((r) => r.cfg));
  logSpectrum('consistency', out.spectrum, [...new Set(runs.map((r) => r.cfg.hook_name))]);
  // how far each run moved from its start (imported SAEs: their initialisation is not ours to rebuild)
  for (const [i, ri] of out.runs.entries()) if (!runs[i].cfg.imported_from) ri.own_init_mmcs = await ownInitMmcs(loadCheckpoint(runs[i].dir).weights, runs[i].cfg.seed);
  const covs = new CovarianceSource();
  const mine = opts.part ? pairsOfPart(seeds, sizes, opts.part, info) : { seeds, sizes };
  const todoSeed = mine.seeds.map(([a, b]) => ({ a, b, hash: pairHash('seed', a, b, thresholds) }));
  const todoSize = mine.sizes.map(([a, b]) => ({ a, b, hash: pairHash('size', a, b, thresholds) }));
  // Work in rows of A through blocked passes: decoder + encoder per seed pair, decoder per size pair.
  const work = todoSeed.filter((p) => !prevSeed.has(p.hash)).reduce((s, p) => s + 2 * p.a.cfg.d_sae, 0)
    + todoSize.filter((p) => !prevSize.has(p.hash)).reduce((s, p) => s + p.a.cfg.d_sae, 0);
  const bar = work > 0 ? createProgress('consistency', work, 'rows') : undefined;
  let done = 0;
  const save = () => writeJsonAtomic(jsonPath, out);
  let reused = 0;

  for (const p of todoSeed) {
    const old = prevSeed.get(p.hash);
    if (old) {
      out.seed_pairs.push({ ...old, a: p.a.name, b: p.b.name });
      reused++;
      continue;
    }
    const t0 = Date.now();
    const wa = loadCheckpoint(p.a.dir, p.a.load).weights, wb = loadCheckpoint(p.b.dir, p.b.load).weights;
    const sparsity = p.a.hasSparsity && p.b.hasSparsity ? { a: readSparsity(p.a.dir), b: readSparsity(p.b.dir) } : undefined;
    const n = wa.dSae;
    const base = done, label = `${p.a.name} vs ${p.b.name}`;
    let at = base;
    const r = await seedPairConsistency(wa, wb, thresholds, sparsity, {
      ...DEFAULT_MATCH,
      onProgress: (phase, rows) => {
        // cosine passes move the bar (decoder, then encoder); pricing rounds show as a phase
        if (phase === 'decoder cosines') at = base + rows;
        else if (phase === 'encoder cosines') at = base + n + rows;
        bar?.update(at, { pair: label, phase });
      },
    });
    done += 2 * n;
    bar?.update(done);
    const pair: SeedPair = {
      a: p.a.name, b: p.b.name, hook: p.a.cfg.hook_name, layer: p.a.cfg.hook_layer, d_sae: n, seeds: [p.a.cfg.seed, p.b.cfg.seed],
      inputs_sha256: p.hash, ...r, chance: await pairChance(wa, { cfg: p.b.cfg, dSae: wb.dSae }, rawScores(r.decoder, thresholds), thresholds, covs),
      seconds: (Date.now() - t0) / 1000,
    };
    if (!sparsity) warn(`${p.a.name} / ${p.b.name}: no ${SPARSITY_FILE} in both; consistency by density left out.`);
    out.seed_pairs.push(pair);
    save();
  }
  for (const p of todoSize) {
    const old = prevSize.get(p.hash);
    if (old) {
      out.size_pairs.push({ ...old, small: p.a.name, large: p.b.name });
      reused++;
      continue;
    }
    const t0 = Date.now();
    const small = loadCheckpoint(p.a.dir, p.a.load).weights, large = loadCheckpoint(p.b.dir, p.b.load).weights;
    const base = done;
    const r = await sizePairSplitting(small, large, CHILD_THRESHOLD, (rows) => bar?.update(base + rows, { pair: `${p.a.name} vs ${p.b.name}` }));
    done += small.dSae;
    const pair: SizePair = {
      small: p.a.name, large: p.b.name, hook: p.a.cfg.hook_name, layer: p.a.cfg.hook_layer, seed: p.a.cfg.seed,
      d_small: small.dSae, d_large: large.dSae, inputs_sha256: p.hash, ...r,
      chance: await pairChance(small, { cfg: p.b.cfg, dSae: large.dSae }, await sizePairRaw(small, large, r.mmcs_small_to_large, thresholds), thresholds, covs),
      seconds: (Date.now() - t0) / 1000,
    };
    out.size_pairs.push(pair);
    save();
  }
  bar?.stop();
  save();
  if (opts.part) {
    info(`consistency part: wrote ${jsonPath}; the run without --part merges the parts into ${CONSISTENCY_JSON}.`);
    return out;
  }
  removePartJsons(sec.out);
  writeFileAtomic(join(sec.out, CONSISTENCY_MD), consistencyMarkdown(out));
  if (reused) info(`consistency: reused ${reused} finished pair(s) whose inputs are unchanged (--fresh recomputes them).`);
  for (const p of out.seed_pairs)
    info(`  ${p.a} vs ${p.b}: MMCS ${p.decoder.mmcs.toFixed(3)}, matched ≥${thresholds[0]}: ${(100 * p.decoder[`matched_fraction@${thresholds[0]}`]).toFixed(1)}%${chanceNote(p.chance)}`);
  info(`consistency: wrote ${jsonPath} and ${join(sec.out, CONSISTENCY_MD)}`);
  return out;
}

/** The seed and size pairs of the recipe as units for workers and the plan. */
export async function consistencyRecipeUnits(recipe: Recipe): Promise<StageUnits> {
  const sources = await resolveCheckpoints(requireSection(recipe, 'consistency').checkpoints, recipe.hook_names);
  const runs = gatherRuns(recipe, sources.dirs, sources.opts);
  return consistencyUnits(seedPairs(runs) as [Input, Input][], sizePairs(runs) as [Input, Input][]);
}
