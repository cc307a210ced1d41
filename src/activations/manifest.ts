import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { UserError, fsError } from '../io/errors.js';
import { writeJsonAtomic } from '../io/atomic.js';

export const CACHE_FORMAT = 'sae-train.activations/v1';

const NormStatsSchema = z.object({ rows: z.number(), sum: z.number(), sum_sq: z.number(), min: z.number(), max: z.number() });
const NormSummarySchema = z.object({ rows: z.number(), mean: z.number(), std: z.number(), min: z.number(), max: z.number() });

/** manifest.json of an activation cache (docs/formats.md "Activation cache"). */
export const ManifestSchema = z.object({
  format: z.literal(CACHE_FORMAT),
  model: z.object({
    name: z.string(),
    d_model: z.number().int().positive(),
    n_layers: z.number().int().nonnegative(),
    processing: z.string(),
  }).loose(),
  hooks: z.array(z.string()).min(1),
  d_in: z.number().int().positive(),
  dtype: z.enum(['float32', 'float16']),
  context_size: z.number().int().positive(),
  prepend_bos: z.boolean(),
  exclude_bos: z.boolean(),
  tokens: z.number().int().nonnegative(),
  shards: z.array(z.object({ file: z.string(), rows: z.number().int().nonnegative(), sha256: z.string(), norms: z.record(z.string(), NormStatsSchema).optional() })),
  corpus: z.object({ paths: z.array(z.string()), documents: z.number().int().nonnegative() }).loose(),
  created_by: z.string(),
  /** Per hook: the rows' L2-norm statistics at harvest (absent in caches written before they were recorded). */
  activation_norms: z.record(z.string(), NormSummarySchema).optional(),
}).loose();
export type Manifest = z.infer<typeof ManifestSchema>;

export function manifestPath(cacheDir: string): string {
  return join(cacheDir, 'manifest.json');
}

/** Reads and validates `<cacheDir>/manifest.json`. */
export function readManifest(cacheDir: string): Manifest {
  const path = manifestPath(cacheDir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const e = fsError(err, path, 'read the activation cache manifest');
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new UserError(`${path}: no manifest: "${cacheDir}" is not a finished activation cache. Run \`sae-train harvest\` (or \`sae-train synth\`) to make one, or fix train.cache.`);
    throw e;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UserError(`${path}: not valid JSON. The cache is damaged: re-run \`sae-train harvest\` into a fresh folder.`);
  }
  const r = ManifestSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new UserError(`${path}: key "${i.path.join('.')}": ${i.message}. Expected a manifest of format ${CACHE_FORMAT}.`);
  }
  const m = r.data;
  const rows = m.shards.reduce((a, s) => a + s.rows, 0);
  if (rows !== m.tokens) throw new UserError(`${path}: "tokens" is ${m.tokens} but the shards hold ${rows} rows. The cache is damaged: re-run harvest into a fresh folder.`);
  return m;
}

export function writeManifest(cacheDir: string, m: Manifest): void {
  writeJsonAtomic(manifestPath(cacheDir), m);
}

/** The file name of shard i: shard-00000.arrow, … */
export function shardFileName(i: number): string {
  return `shard-${String(i).padStart(5, '0')}.arrow`;
}
