import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../src/io/errors.js';
import { downloadFile, hubModelDir, resolveModelDir } from '../src/model/hub.js';
import { loadGpt2 } from '../src/model/load.js';
import { disposeParams } from '../src/model/weights.js';
import { useTestBackend } from './helpers/backend.js';
import { tmpDir } from './helpers/tmp.js';

/**
 * A local stand-in for huggingface.co on 127.0.0.1, in the hub's URL layout: <id>/resolve/main/<file>.
 * Small files come with ETag = git blob sha1; model.safetensors is an LFS file: a 302 to a "CDN" path with
 * x-linked-etag (sha256) and x-linked-size, and the CDN honours Range requests.
 */
const FIXTURE = 'test/fixtures/gpt2-tiny';
const files: Record<string, Buffer> = {
  'config.json': readFileSync(join(FIXTURE, 'config.json')),
  'model.safetensors': readFileSync(join(FIXTURE, 'model.safetensors')),
};
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const gitSha1 = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

interface Behaviour {
  /** Close the connection after this many body bytes of the CDN file (once). */
  cutAfter?: number;
  /** Serve the CDN file with one byte flipped. */
  corrupt?: boolean;
}
let behaviour: Behaviour = {};
const log: { path: string; range?: string }[] = [];

const server = http.createServer((req, res) => {
  const path = req.url ?? '';
  log.push({ path, range: req.headers.range });
  const m = /^\/org\/tiny\/resolve\/main\/(.+)$/.exec(path);
  if (m && m[1] === 'config.json') {
    res.writeHead(200, { etag: `"${gitSha1(files['config.json'])}"`, 'content-length': files['config.json'].length });
    return res.end(files['config.json']);
  }
  if (m && m[1] === 'model.safetensors') {
    const body = files['model.safetensors'];
    res.writeHead(302, { location: '/cdn/blob', 'x-linked-etag': `"${sha256(body)}"`, 'x-linked-size': String(body.length), etag: '"0123456789abcdef0123456789abcdef01234567"' });
    return res.end();
  }
  if (path === '/cdn/blob') {
    let body = files['model.safetensors'];
    if (behaviour.corrupt) {
      body = Buffer.from(body);
      body[body.length - 5] ^= 0xff;
    }
    const r = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = r ? Number(r[1]) : 0;
    const part = body.subarray(start);
    res.writeHead(r ? 206 : 200, { 'content-length': part.length, ...(r ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}) });
    if (behaviour.cutAfter !== undefined) {
      const n = behaviour.cutAfter;
      behaviour.cutAfter = undefined;
      res.write(part.subarray(0, n), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    return res.end(part);
  }
  res.writeHead(404);
  res.end('not found');
});

let base = '';
beforeAll(async () => {
  await useTestBackend();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('hub download', () => {
  let cache = '';
  beforeEach(() => {
    cache = tmpDir('sae-train-hub-');
    process.env.SAE_TRAIN_CACHE = cache;
    process.env.SAE_TRAIN_HUB_URL = base;
    behaviour = {};
    log.length = 0;
  });

  it('downloads config.json and model.safetensors once (following the CDN redirect) and loads the model', async () => {
    const m = await loadGpt2('org/tiny');
    expect(m.name).toBe('org/tiny');
    expect(m.dir).toBe(hubModelDir('org/tiny'));
    expect(m.dir.startsWith(cache)).toBe(true);
    expect(readFileSync(join(m.dir, 'model.safetensors')).equals(files['model.safetensors'])).toBe(true);
    disposeParams(m.params);
    expect(log.map((l) => l.path)).toEqual(['/org/tiny/resolve/main/config.json', '/org/tiny/resolve/main/model.safetensors', '/cdn/blob']);
    log.length = 0;
    expect(await resolveModelDir('org/tiny')).toBe(m.dir);
    expect(log).toEqual([]); // cached: no request
  });

  it('resumes an interrupted download with a Range request; the final name appears only when complete', async () => {
    const dest = join(cache, 'model.safetensors');
    behaviour.cutAfter = 200_000;
    await expect(downloadFile('org/tiny', 'model.safetensors', dest)).rejects.toThrow(/connection was cut.*resumes/);
    expect(existsSync(dest)).toBe(false);
    expect(statSync(`${dest}.incomplete`).size).toBe(200_000);
    log.length = 0;
    await downloadFile('org/tiny', 'model.safetensors', dest);
    expect(log.find((l) => l.path === '/cdn/blob')?.range).toBe('bytes=200000-');
    expect(readFileSync(dest).equals(files['model.safetensors'])).toBe(true);
    expect(existsSync(`${dest}.incomplete`)).toBe(false);
  });

  it('discards a download whose sha256 does not match x-linked-etag', async () => {
    const dest = join(cache, 'model.safetensors');
    behaviour.corrupt = true;
    await expect(downloadFile('org/tiny', 'model.safetensors', dest)).rejects.toThrow(/model\.safetensors: checksum mismatch \(expected [0-9a-f]{64}, got [0-9a-f]{64}\)/);
    expect(existsSync(dest)).toBe(false);
    expect(existsSync(`${dest}.incomplete`)).toBe(false);
  });

  it('checks small files against their git blob sha1 ETag', async () => {
    const dest = join(cache, 'config.json');
    await downloadFile('org/tiny', 'config.json', dest);
    expect(readFileSync(dest).equals(files['config.json'])).toBe(true);
  });

  it('explains an unknown id and an unreachable hub, naming the URL and the local-folder alternative', async () => {
    await expect(resolveModelDir('org/nothing')).rejects.toThrow(/org\/nothing\/resolve\/main\/config\.json: not found \(HTTP 404\)/);
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    process.env.SAE_TRAIN_HUB_URL = `http://127.0.0.1:${port}`;
    const err = await resolveModelDir('gpt2').catch((e) => e);
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toContain(`http://127.0.0.1:${port}/gpt2/resolve/main/config.json`);
    expect(err.message).toMatch(/offline.*set model: to that folder/);
    await expect(resolveModelDir('./models/none')).rejects.toThrow(/neither an existing folder nor a hub id/);
  });

  it('restarts instead of appending when the partial file belongs to another version of the file', async () => {
    const dest = join(cache, 'model.safetensors');
    writeFileSync(`${dest}.incomplete`, Buffer.alloc(1000, 7));
    writeFileSync(`${dest}.incomplete.json`, JSON.stringify({ etag: 'f'.repeat(64) }));
    await downloadFile('org/tiny', 'model.safetensors', dest);
    expect(readFileSync(dest).equals(files['model.safetensors'])).toBe(true);
  });
});
