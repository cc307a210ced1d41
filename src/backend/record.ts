import { UserError } from '../io/errors.js';
import type { AdapterRecord } from './webgpu.js';

/**
 * The backend record that outputs keep (cfg.json's backend, backend_detail, backend_adapter; the cache manifest's
 * and a harvest part's `backend`): what decides the rounding. backend_detail names the BLAS and its kernel family
 * ("wasm + OpenBLAS 0.3.21, Zen kernels": OpenBLAS picks Zen, Haswell, SkylakeX… kernels per CPU, and they
 * round differently); the thread count is left out (results do not depend on it). A run resumed, or parts merged,
 * on another record are no longer bit-identical to one uninterrupted run: that takes --allow-backend-change.
 */
export interface BackendRecord {
  backend: string | null;
  backend_detail?: string;
  backend_adapter?: AdapterRecord;
}

/** The record of a backend as BackendInfo (src/backend/picker.ts) gives it. */
export function recordOf(b: { name: string; detail: string; adapter?: AdapterRecord }): BackendRecord {
  return { backend: b.name, backend_detail: b.detail, ...(b.adapter ? { backend_adapter: b.adapter } : {}) };
}

/** The record a cfg-like object holds (missing keys as absent). */
export function recordIn(o: Record<string, unknown>): BackendRecord {
  return {
    backend: (o.backend as string | null | undefined) ?? null,
    ...(typeof o.backend_detail === 'string' ? { backend_detail: o.backend_detail } : {}),
    ...(o.backend_adapter ? { backend_adapter: o.backend_adapter as AdapterRecord } : {}),
  };
}

/** One line naming a record: its detail, else its name. */
export const describeRecord = (r: BackendRecord): string => r.backend_detail ?? r.backend ?? 'unknown';

/** Where two records differ, as "key: a → b" (empty when they are the same). */
export function recordDifferences(saved: BackendRecord, now: BackendRecord): string[] {
  return (['backend', 'backend_detail', 'backend_adapter'] as const)
    .filter((k) => JSON.stringify(saved[k] ?? null) !== JSON.stringify(now[k] ?? null))
    .map((k) => k === 'backend_adapter' ? `backend_adapter: ${saved[k]?.device ?? 'none'} → ${now[k]?.device ?? 'none'}` : `${k}: ${JSON.stringify(saved[k] ?? null)} → ${JSON.stringify(now[k] ?? null)}`);
}

export const ALLOW_BACKEND_CHANGE = '--allow-backend-change';

/**
 * Checks that work continues on the backend it started on. Same record: undefined. Another one: a UserError
 * naming both and the flag, or with `allow` the note to print and keep (bit-identity no longer holds).
 * `what` says what continues, e.g. "<run>: resuming at step 40".
 */
export function checkBackendChange(what: string, saved: BackendRecord, now: BackendRecord, allow: boolean): string | undefined {
  const diffs = recordDifferences(saved, now);
  if (!diffs.length) return undefined;
  const why = `it was started on ${describeRecord(saved)} and this process runs ${describeRecord(now)} (${diffs.join('; ')})`;
  if (!allow)
    throw new UserError(`${what}: ${why}. Continuing would mix two roundings, and the result would no longer be bit-identical to an uninterrupted run on one backend. ` +
      `Run it on the backend it started on (same machine type, --backend), pass ${ALLOW_BACKEND_CHANGE} to continue anyway, or --fresh to start over.`);
  return `${what}: ${why}; continuing (${ALLOW_BACKEND_CHANGE}): the result is no longer bit-identical to an uninterrupted run on one backend.`;
}
