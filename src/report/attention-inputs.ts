import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ATTENTION_FORMAT, ATTENTION_JSON, SETS_DIR, type AttentionFile } from '../eval/attention/types.js';
import { UserError } from '../io/errors.js';

/** Every attention.json under eval.out (<run>/ and attention_sets/<set>/), in name order. */
export function readAttentionFiles(evalOut: string, sources: string[]): AttentionFile[] {
  const dirs = [...readdirSync(evalOut).sort().map((d) => join(evalOut, d)),
    ...(existsSync(join(evalOut, SETS_DIR)) ? readdirSync(join(evalOut, SETS_DIR)).sort().map((d) => join(evalOut, SETS_DIR, d)) : [])];
  const out: AttentionFile[] = [];
  for (const d of dirs) {
    const p = join(d, ATTENTION_JSON);
    if (!existsSync(p)) continue;
    let f: AttentionFile;
    try {
      f = JSON.parse(readFileSync(p, 'utf8')) as AttentionFile;
    } catch (err) {
      throw new UserError(`${p}: not readable JSON (${(err as Error).message}). Re-run \`sae-train eval\` to rewrite it.`);
    }
    if (f.format !== ATTENTION_FORMAT) continue;
    out.push(f);
    sources.push(p);
  }
  return out;
}

