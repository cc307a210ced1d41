/**
 * Child process or worker_thread for `workers`? Start-up to a ready wasm backend, and 2 × a fixed matmul loop
 * run side by side, in 2 child processes (the built CLI's way) and in 2 worker_threads of one process.
 *   npm run build && npx vite-node bench/worker-start.ts
 */
import { fork } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';

const dir = mkdtempSync(join(tmpdir(), 'bench-wstart-'));
// inside dist/ so that @tensorflow/tfjs-core resolves to the project's (the same module the picker set up)
const script = resolve('dist/.bench-worker-job.mjs');
// the same job either way: init wasm (through the project's picker), then 20 matmuls [512,768]×[768,2048]
writeFileSync(script, `
import { initBackend } from ${JSON.stringify(resolve('dist/backend/picker.js'))};
import * as tf from '@tensorflow/tfjs-core';
import { parentPort } from 'node:worker_threads';
const t0 = performance.now();
await initBackend('wasm');
const ready = performance.now() - t0;
const a = tf.randomNormal([512, 768]), b = tf.randomNormal([768, 2048]);
const t1 = performance.now();
for (let i = 0; i < 20; i++) tf.tidy(() => tf.matMul(a, b).dataSync());
const msg = { ready, compute: performance.now() - t1 };
if (parentPort) parentPort.postMessage(msg); else process.send(msg);
`);
const env = { ...process.env };

async function twoChildren(): Promise<number[]> {
  const t0 = performance.now();
  await Promise.all([0, 1].map(() => new Promise((res) => {
    const c = fork(script, [], { cwd: resolve('.'), env, stdio: 'inherit' });
    c.on('message', res);
  })));
  return [performance.now() - t0];
}

async function twoThreads(): Promise<number[]> {
  const t0 = performance.now();
  await Promise.all([0, 1].map(() => new Promise((res, rej) => {
    const w = new Worker(script, { env });
    w.on('message', (m) => { res(m); void w.terminate(); });
    w.on('error', rej);
  })));
  return [performance.now() - t0];
}

async function main(): Promise<void> {
  const rows: string[] = [];
  for (let rep = 0; rep < 3; rep++) {
    const l = loadavg()[0].toFixed(1);
    const [c] = await twoChildren();
    const [t] = await twoThreads();
    rows.push(`rep ${rep}: 2 child processes ${c.toFixed(0)} ms, 2 worker_threads ${t.toFixed(0)} ms (load ${l})`);
  }
  console.log(rows.join('\n'));
}

main().finally(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(script, { force: true });
});
