// Child process or worker_thread for `workers`? Two of each, side by side, each: start, init the wasm backend,
// 20 matmuls [512,768]×[768,2048]; wall time until both are done. `npm run build && node bench/worker-start.mjs`
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { Worker, isMainThread, parentPort } from 'node:worker_threads';

const job = async () => {
  const t0 = performance.now();
  const { initBackend } = await import('../dist/backend/picker.js');
  const tf = createRequire(import.meta.url)('@tensorflow/tfjs-core'); // the CJS build the picker also gets
  await initBackend('wasm');
  const ready = performance.now() - t0;
  const a = tf.randomNormal([512, 768]), b = tf.randomNormal([768, 2048]);
  const t1 = performance.now();
  for (let i = 0; i < 20; i++) tf.tidy(() => tf.matMul(a, b).dataSync());
  return { ready, compute: performance.now() - t1 };
};

if (process.argv[2] === 'child') {
  process.send(await job(), () => process.disconnect());
} else if (!isMainThread) {
  parentPort.postMessage(await job());
} else {
  const me = new URL(import.meta.url);
  const both = (start) => Promise.all([0, 1].map(() => new Promise(start)));
  for (let rep = 0; rep < 3; rep++) {
    const l = loadavg()[0].toFixed(1);
    let t = performance.now();
    const c = await both((res) => fork(me, ['child']).on('message', res));
    const tc = performance.now() - t;
    t = performance.now();
    const w = await both((res) => { const x = new Worker(me); x.on('message', (m) => { res(m); void x.terminate(); }); });
    const tw = performance.now() - t;
    const f = (r) => r.map((m) => `ready ${m.ready.toFixed(0)} + compute ${m.compute.toFixed(0)} ms`).join(', ');
    console.log(`rep ${rep} (load ${l}): 2 child processes ${tc.toFixed(0)} ms (${f(c)}); 2 worker_threads ${tw.toFixed(0)} ms (${f(w)})`);
  }
}
