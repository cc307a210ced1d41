import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../src/io/errors.js';
import { importCheckpoint } from '../src/sae/exchange.js';
import { loadCheckpoint } from '../src/sae/checkpoint.js';
import { hfCacheDir, parseHfEntry, resolveCheckpoints } from '../src/sae/sources.js';
import { setQuiet } from '../src/ui/log.js';
import { randomParams, writeSaelensV6, writeSparsify } from './helpers/foreign-saes.js';
import { tmpDir } from './helpers/tmp.js';

/**
 * hf://<owner>/<repo>/<folder> checkpoints, downloaded with the model downloader from a stand-in for the hub on
 * 127.0.0.1 (the hub's URL layout <repo>/resolve/main/<folder>/<file>; small files with a git-sha1 ETag, the
 * weights as an LFS file: a 302 to a "CDN" with x-linked-etag sha256, honouring Range).
 */

const src = tmpDir('sae-hub-src-');
const HOOK_FOLDER = 'blocks.1.hook_resid_pre';
writeSaelensV6(join(src, HOOK_FOLDER), randomParams('hub', 16, 40), { architecture: 'jumprelu', hook_name: 'blocks.1.hook_resid_pre' });
writeSparsify(join(src, 'h.0'), randomParams('hub-sp', 16, 40), 3);

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const gitSha1 = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
let behaviour: { cutAfter?: number; corrupt?: boolean } = {};
const log: { path: string; range?: string }[] = [];

const server = http.createServer((req, res) => {
  const path = decodeURIComponent(req.url ?? '');
  log.push({ path, range: req.headers.range });
  const cdn = /^\/cdn\/(.+)$/.exec(path);
  const m = /^\/org\/saes\/resolve\/main\/(.+)$/.exec(path);
  const file = m ? join(src, m[1]) : cdn ? join(src, cdn[1]) : '';
  if (!file || !existsSync(file)) {
    res.writeHead(404);
    return res.end('Entry not found');
  }
  const body = readFileSync(file);
  if (m && !file.endsWith('.safetensors')) {
    res.writeHead(200, { etag: `"${gitSha1(body)}"`, 'content-length': body.length });
    return res.end(body);
  }
  if (m) {
    res.writeHead(302, { location: `/cdn/${m[1]}`, 'x-linked-etag': `"${sha256(body)}"`, 'x-linked-size': String(body.length) });
    return res.end();
  }
  let served = body;
  if (behaviour.corrupt) {
    served = Buffer.from(body);
    served[served.length - 3] ^= 0xff;
  }
  const r = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const start = r ? Number(r[1]) : 0;
  const part = served.subarray(start);
  res.writeHead(r ? 206 : 200, { 'content-length': part.length, ...(r ? { 'content-range': `bytes ${start}-${served.length - 1}/${served.length}` } : {}) });
  if (behaviour.cutAfter !== undefined) {
    const n = behaviour.cutAfter;
    behaviour.cutAfter = undefined;
    res.write(part.subarray(0, n), () => setTimeout(() => res.socket?.destroy(), 20));
    return;
  }
  res.end(part);
});

beforeAll(async () => {
  setQuiet(true);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  process.env.SAE_TRAIN_HUB_URL = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('hf:// checkpoints', () => {
  beforeEach(() => {
    process.env.SAE_TRAIN_CACHE = tmpDir('sae-hub-cache-');
    behaviour = {};
    log.length = 0;
  });

  it('parses entries and refuses malformed ones', () => {
    expect(parseHfEntry('hf://org/saes/blocks.1.hook_resid_pre')).toEqual({ repo: 'org/saes', folder: 'blocks.1.hook_resid_pre' });
    expect(() => parseHfEntry('hf://justone')).toThrow(/hf:\/\/<owner>\/<repo>\/<folder>/);
    expect(() => parseHfEntry('hf://org/saes/../x')).toThrow(/hf:\/\//);
  });

  it('downloads a SAELens folder once into $SAE_TRAIN_CACHE/saes/, resuming after a cut connection', async () => {
    const entry = `hf://org/saes/${HOOK_FOLDER}`;
    behaviour.cutAfter = 1000;
    await expect(resolveCheckpoints([entry])).rejects.toThrow(/connection was cut after 1000 bytes.*resumes/);
    const dir = hfCacheDir(entry);
    expect(existsSync(join(dir, 'sae_weights.safetensors'))).toBe(false);
    log.length = 0;
    const { dirs } = await resolveCheckpoints([entry]);
    expect(dirs).toEqual([dir]);
    expect(dir.startsWith(process.env.SAE_TRAIN_CACHE!)).toBe(true);
    expect(log.find((l) => l.path.startsWith('/cdn/') && l.path.endsWith('sae_weights.safetensors'))?.range).toBe('bytes=1000-');
    expect(readFileSync(join(dir, 'sae_weights.safetensors')).equals(readFileSync(join(src, HOOK_FOLDER, 'sae_weights.safetensors')))).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(['cfg.json', 'sae_weights.safetensors']); // no sparsity file on the hub: none here
    const a = loadCheckpoint(dir), b = loadCheckpoint(join(src, HOOK_FOLDER));
    expect(Array.from(a.weights.W_dec)).toEqual(Array.from(b.weights.W_dec));
    expect(a.weights.encoder).toEqual(b.weights.encoder);
    log.length = 0;
    await resolveCheckpoints([entry]);
    expect(log).toEqual([]); // cached
  });

  it('refuses a download whose checksum does not match, keeping nothing under the final name', async () => {
    behaviour.corrupt = true;
    const entry = `hf://org/saes/${HOOK_FOLDER}`;
    await expect(resolveCheckpoints([entry])).rejects.toThrow(/sae_weights\.safetensors: checksum mismatch \(expected [0-9a-f]{64}, got [0-9a-f]{64}\)/);
    expect(existsSync(join(hfCacheDir(entry), 'sae_weights.safetensors'))).toBe(false);
  });

  it('imports a sparsify folder from the hub (its hook read from the hookpoint name) into a run folder', async () => {
    const out = join(tmpDir('sae-hub-out-'), 'run');
    const cfg = await importCheckpoint('hf://org/saes/h.0', out, { overwrite: false });
    expect(cfg.hook_name).toBe('blocks.0.hook_resid_post');
    expect(cfg.imported_from).toMatchObject({ format: 'sparsify', source: 'hf://org/saes/h.0' });
    expect(log.some((l) => l.path.endsWith('h.0/sae.safetensors'))).toBe(true);
    expect(log.some((l) => l.path.endsWith('h.0/sae_weights.safetensors'))).toBe(false);
    expect(loadCheckpoint(out).weights.encoder).toMatchObject({ architecture: 'topk', k: 3 });
    // the recipe's hook_names may key an hf:// entry
    const r = await resolveCheckpoints(['hf://org/saes/h.0'], { 'hf://org/saes/h.0': 'blocks.1.hook_resid_pre' });
    expect(loadCheckpoint(r.dirs[0], r.opts(r.dirs[0])).cfg.hook_name).toBe('blocks.1.hook_resid_pre');
  });

  it('offline, names the SAE\'s files and `sae-train import <folder>`, not a model\'s', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const base = process.env.SAE_TRAIN_HUB_URL;
    process.env.SAE_TRAIN_HUB_URL = `http://127.0.0.1:${port}`;
    try {
      const out = join(tmpDir('sae-hub-out-'), 'run');
      const err = await importCheckpoint(`hf://org/saes/${HOOK_FOLDER}`, out, { overwrite: false }).catch((e: unknown) => e as Error);
      expect(err).toBeInstanceOf(UserError);
      const m = (err as Error).message;
      expect(m).toContain(`http://127.0.0.1:${port}/org/saes/resolve/main/${HOOK_FOLDER}/cfg.json (ECONNREFUSED)`);
      expect(m).toContain(`https://huggingface.co/org/saes/tree/main/${HOOK_FOLDER}`);
      expect(m).toMatch(/cfg\.json and sae_weights\.safetensors/);
      expect(m).toContain('sae-train import <folder> --out DIR');
      expect(m).not.toMatch(/model\.safetensors|config\.json|set model:/);
      expect(existsSync(out)).toBe(false);
    } finally {
      process.env.SAE_TRAIN_HUB_URL = base;
    }
  });

  it('names the URL when the folder is not on the hub', async () => {
    await expect(resolveCheckpoints(['hf://org/saes/blocks.9.hook_resid_pre'])).rejects.toThrow(/org\/saes\/resolve\/main\/blocks\.9\.hook_resid_pre\/cfg\.json: not found on the hub \(HTTP 404\)/);
  });
});
