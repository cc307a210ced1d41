import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../io/atomic.js';
import { hubModelDir, isHubId } from '../model/hub.js';
import { modelFingerprint } from './inputs.js';
import { referenceCe, type ReferenceCe } from './model_size.js';

export const REFERENCES_FILE = 'references.json';

interface Cached extends ReferenceCe {
  fingerprint: unknown;
}

/**
 * eval.reference_models' clean CE on the eval windows, cached in <out>/references.json by model files and
 * windows (a reference model costs a full forward over every eval token).
 */
export async function referenceCes(specs: readonly string[], windows: readonly Int32Array[], windowsSha: string, out: string, batchSize: number, fresh: boolean, say: (msg: string) => void): Promise<ReferenceCe[]> {
  if (!specs.length) return [];
  const path = join(out, REFERENCES_FILE);
  let cached: { windows_sha256: string; refs: Cached[] } | undefined;
  try {
    cached = fresh ? undefined : JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    cached = undefined;
  }
  const refs: Cached[] = [];
  for (const spec of specs) {
    const fingerprint = modelFingerprint(spec, !existsSync(spec) && isHubId(spec) ? hubModelDir(spec) : spec);
    const hit = cached?.windows_sha256 === windowsSha ? cached.refs.find((r) => JSON.stringify(r.fingerprint) === JSON.stringify(fingerprint)) : undefined;
    if (hit) {
      refs.push(hit);
      continue;
    }
    say(`reference model ${spec}: clean CE on the eval tokens…`);
    const r = await referenceCe(spec, windows, batchSize);
    say(`  ${spec}: ${r.params.toLocaleString('en-US')} parameters, CE ${r.ce.toFixed(4)}`);
    refs.push({ ...r, fingerprint });
  }
  writeJsonAtomic(path, { windows_sha256: windowsSha, refs });
  return refs.map(({ model, params, ce }) => ({ model, params, ce }));
}
