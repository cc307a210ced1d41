/**
 * Keeps files' mtimes fresh from a worker thread, so that a process on another host can tell a live lock from
 * one left by a crashed or unreachable node: the main thread may be busy for minutes in synchronous tensor
 * code, a worker thread is not.
 */
import { Worker } from 'node:worker_threads';

/** How often a held lock's mtime is refreshed. */
export const HEARTBEAT_MS = 30_000;

const SOURCE = `
const { workerData } = require('node:worker_threads');
const { utimesSync } = require('node:fs');
setInterval(() => {
  const now = new Date();
  for (const p of workerData.paths) {
    try { utimesSync(p, now, now); } catch { /* released, or the filesystem is gone: nothing to keep fresh */ }
  }
}, workerData.ms);
`;

/** Starts refreshing `paths` every `ms`; the returned function stops it. Never keeps the process alive. */
export function startHeartbeat(paths: string[], ms = HEARTBEAT_MS): () => void {
  if (paths.length === 0) return () => undefined;
  const w = new Worker(SOURCE, { eval: true, workerData: { paths, ms } });
  w.unref();
  w.on('error', () => undefined);
  return () => void w.terminate();
}
