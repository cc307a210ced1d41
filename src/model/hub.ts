/**
 * `model:` as a Hugging Face hub id (gpt2, gpt2-medium, distilgpt2, openai-community/gpt2, …): config.json and
 * model.safetensors are downloaded once from <base>/<id>/resolve/main/<file> into
 * $SAE_TRAIN_CACHE/hub/<id>/ (default ~/.cache/sae-train), and read from there afterwards.
 *
 * A download follows redirects (the hub sends large files to a CDN), writes to "<file>.incomplete" and resumes
 * it with an HTTP Range request after an interruption, checks the size and the checksum the hub publishes
 * (x-linked-etag: sha256 of an LFS file; ETag: git blob sha1 of a small file) and only then renames the file
 * into place, so a final name always holds a complete, verified file.
 * SAE_TRAIN_HUB_URL overrides the base URL (tests serve a model from 127.0.0.1); HF_TOKEN, when set, is sent
 * to the hub's own host for gated or private repos.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { writeJsonAtomic } from '../io/atomic.js';
import { UserError, fsError } from '../io/errors.js';
import { info } from '../ui/log.js';
import { createProgress } from '../ui/progress.js';

export const HUB_FILES = ['config.json', 'model.safetensors'] as const;
const DEFAULT_HUB = 'https://huggingface.co';
const MAX_REDIRECTS = 10;

/** A file the hub does not have (HTTP 404): callers probing for optional files catch this one. */
export class HubFileMissing extends UserError {}

/** The hub could not be reached (offline, DNS, refused): the message gives a model's advice; SAE downloads give their own. */
export class HubUnreachable extends UserError {
  constructor(message: string, readonly url: string, readonly code: string) {
    super(message);
  }
}

/** The cache root: $SAE_TRAIN_CACHE, else $XDG_CACHE_HOME/sae-train, else ~/.cache/sae-train. */
export function cacheRoot(): string {
  return process.env.SAE_TRAIN_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'sae-train');
}

export function hubBaseUrl(): string {
  return (process.env.SAE_TRAIN_HUB_URL || DEFAULT_HUB).replace(/\/+$/, '');
}

/** Whether a model spec looks like a hub id ("gpt2", "org/name") rather than a path. */
export function isHubId(spec: string): boolean {
  return /^[A-Za-z0-9][\w.-]*(\/[A-Za-z0-9][\w.-]*)?$/.test(spec) && !spec.includes('..');
}

export function hubFileUrl(id: string, file: string): string {
  return `${hubBaseUrl()}/${id}/resolve/main/${file}`;
}

/** Where a hub model is cached. */
export function hubModelDir(id: string): string {
  return join(cacheRoot(), 'hub', ...id.split('/'));
}

interface Meta {
  /** Expected total size, when the server said. */
  size?: number;
  /** Checksum the server published: sha256 (64 hex) or git blob sha1 (40 hex). */
  etag?: string;
}

function cleanEtag(v: string | string[] | undefined): string | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  const m = s && /^(?:W\/)?"?([0-9a-f]{40}|[0-9a-f]{64})"?$/i.exec(s.trim());
  return m ? m[1].toLowerCase() : undefined;
}

function offlineError(url: string, id: string, err: NodeJS.ErrnoException): UserError {
  const code = err.code ?? err.message;
  return new HubUnreachable(`could not download ${url} (${code}): the machine seems to be offline or the hub unreachable. ` +
    `On a machine with internet access, download config.json and model.safetensors from https://huggingface.co/${id}/tree/main into a folder and set model: to that folder (e.g. model: models/${id.replace('/', '-')}).`, url, code);
}

/** GET with redirects; resolves with the final response and what the hops said about the file. */
function get(url: string, headers: Record<string, string>, id: string): Promise<{ res: http.IncomingMessage; meta: Meta; url: string }> {
  const authHost = new URL(hubBaseUrl()).host;
  const meta: Meta = {};
  const hop = (u: string, left: number): Promise<{ res: http.IncomingMessage; meta: Meta; url: string }> =>
    new Promise((resolve, reject) => {
      const parsed = new URL(u);
      const h: Record<string, string> = { 'user-agent': 'sae-train', ...headers };
      if (process.env.HF_TOKEN && parsed.host === authHost) h.authorization = `Bearer ${process.env.HF_TOKEN}`;
      const mod = parsed.protocol === 'https:' ? https : http;
      const req = mod.get(u, { headers: h, timeout: 60_000 }, (res) => {
        const linked = cleanEtag(res.headers['x-linked-etag']);
        if (linked) meta.etag = linked;
        const linkedSize = Number(res.headers['x-linked-size']);
        if (linkedSize > 0) meta.size = linkedSize;
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400 && res.headers.location) {
          res.resume();
          if (left === 0) return reject(new UserError(`${url}: too many redirects.`));
          return resolve(hop(new URL(res.headers.location, u).toString(), left - 1));
        }
        if (!meta.etag) meta.etag = cleanEtag(res.headers.etag);
        resolve({ res, meta, url: u });
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', (err: NodeJS.ErrnoException) => reject(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENETUNREACH', 'EHOSTUNREACH'].includes(err.code ?? '') ? offlineError(url, id, err) : err));
    });
  return hop(url, MAX_REDIRECTS);
}

function hashFile(path: string, h: Hash): Promise<void> {
  return new Promise((resolve, reject) => {
    createReadStream(path).on('data', (d) => h.update(d)).on('end', () => resolve()).on('error', reject);
  });
}

/**
 * Downloads one file to `dest` (atomically, resumably, verified). Errors name the URL; an interrupted download
 * leaves `<dest>.incomplete` (and `.incomplete.json` with the server's checksum) for the next attempt.
 */
export async function downloadFile(id: string, file: string, dest: string): Promise<void> {
  const url = hubFileUrl(id, file);
  const part = `${dest}.incomplete`;
  const partMeta = `${part}.json`;
  mkdirSync(join(dest, '..'), { recursive: true });
  let have = existsSync(part) ? statSync(part).size : 0;
  let prevEtag: string | undefined;
  try {
    prevEtag = JSON.parse(readFileSync(partMeta, 'utf8')).etag;
  } catch {
    have = 0; // a partial file without its checksum record cannot be trusted
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    const { res, meta } = await get(url, have > 0 ? { range: `bytes=${have}-` } : {}, id);
    const status = res.statusCode ?? 0;
    if (status === 404 || status === 401 || status === 403) {
      res.resume();
      const why = status === 404 ? 'not found' : 'access denied (a gated or private repo: set HF_TOKEN)';
      throw new (status === 404 ? HubFileMissing : UserError)(`${url}: ${why} (HTTP ${status}).${file === 'model.safetensors' ? ' sae-train reads model.safetensors only (never pickle .bin weights); check the id (gpt2, gpt2-medium, distilgpt2) or give a local folder.' : ' Check the model id, or give a local folder with config.json and model.safetensors.'}`);
    }
    if (status === 416 && have > 0) {
      res.resume(); // the partial file is already whole (or longer than the file): verify it below
    } else if (status !== 200 && status !== 206) {
      res.resume();
      throw new UserError(`${url}: the server answered HTTP ${status}. Try again later, or give a local folder with config.json and model.safetensors.`);
    }
    // A partial file of another version of the file (or a server that ignores Range) means starting over.
    if (have > 0 && (status === 200 || (meta.etag && prevEtag && meta.etag !== prevEtag))) {
      if (status === 206) {
        res.destroy();
        rmSync(part, { force: true });
        have = 0;
        continue;
      }
      have = 0;
    }
    const rangeTotal = Number(/\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''))?.[1] ?? NaN);
    const total = meta.size ?? (Number.isFinite(rangeTotal) ? rangeTotal : status === 200 ? Number(res.headers['content-length'] ?? NaN) : NaN);
    writeJsonAtomic(partMeta, { url, etag: meta.etag, size: Number.isFinite(total) ? total : undefined });
    // A 40-hex ETag is the git blob sha1 of a small file: sha1 of "blob <size>\0" + content.
    const gitSha1 = meta.etag?.length === 40 && Number.isFinite(total);
    if (meta.etag?.length === 40 && !gitSha1) meta.etag = undefined;
    const hash = createHash(gitSha1 ? 'sha1' : 'sha256');
    if (gitSha1) hash.update(`blob ${total}\0`);
    if (have > 0) await hashFile(part, hash);
    if (status !== 416) await receive(res, part, have, hash, url, file, Number.isFinite(total) ? total : undefined);
    const size = statSync(part).size;
    if (Number.isFinite(total) && size !== total) {
      rmSync(part, { force: true });
      throw new UserError(`${url}: downloaded ${size} bytes but the file has ${total}. Run the same command again to retry.`);
    }
    if (meta.etag) {
      const got = hash.digest('hex');
      if (got !== meta.etag) {
        rmSync(part, { force: true });
        rmSync(partMeta, { force: true });
        throw new UserError(`${url}: checksum mismatch (expected ${meta.etag}, got ${got}): the download is corrupted and was discarded. Run the same command again to retry.`);
      }
    }
    try {
      renameSync(part, dest);
    } catch (err) {
      throw fsError(err, dest, 'move the downloaded file into place');
    }
    rmSync(partMeta, { force: true });
    return;
  }
  throw new UserError(`${url}: the server kept sending a different version of the file; run the same command again.`);
}

/** Streams a response body onto the end of `part` (created or appended), fsyncing at the end. */
function receive(res: http.IncomingMessage, part: string, have: number, hash: Hash, url: string, file: string, total?: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let fd: number;
    try {
      fd = openSync(part, have > 0 ? 'a' : 'w');
    } catch (err) {
      res.resume();
      return reject(fsError(err, part, 'write a download'));
    }
    const progress = createProgress(`download ${file}`, total ?? 0, 'B', have);
    let done = have;
    const fail = (err: unknown) => {
      try {
        closeSync(fd);
      } catch { /* already closed */ }
      progress.stop();
      reject(err);
    };
    res.on('data', (chunk: Buffer) => {
      try {
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
      } catch (err) {
        res.destroy();
        return fail(fsError(err, part, 'write a download'));
      }
      hash.update(chunk);
      done += chunk.length;
      if (total) progress.update(done);
    });
    res.on('aborted', () => fail(new UserError(`${url}: the connection was cut after ${done} bytes. Run the same command again: the download resumes where it stopped.`)));
    res.on('error', (err) => fail(new UserError(`${url}: the download failed after ${done} bytes (${err.message}). Run the same command again: it resumes where it stopped.`)));
    res.on('end', () => {
      if (res.readableAborted) return;
      try {
        fsyncSync(fd);
        closeSync(fd);
      } catch (err) {
        return fail(fsError(err, part, 'write a download'));
      }
      progress.stop();
      resolve();
    });
  });
}

/**
 * The local folder of a hub model, downloading config.json and model.safetensors first if they are not
 * cached yet.
 */
export async function fetchHubModel(id: string): Promise<string> {
  const dir = hubModelDir(id);
  for (const f of HUB_FILES) {
    const dest = join(dir, f);
    if (existsSync(dest)) continue;
    info(`downloading ${hubFileUrl(id, f)} → ${dest}`);
    await downloadFile(id, f, dest);
  }
  return dir;
}

/**
 * A `model:` value → a local folder: an existing path as is; otherwise a hub id, downloaded once. A value
 * that is neither is a UserError naming both alternatives.
 */
export async function resolveModelDir(spec: string): Promise<string> {
  if (existsSync(spec)) return spec;
  if (spec.startsWith('.') || spec.startsWith('/') || spec.includes('\\') || !isHubId(spec))
    throw new UserError(`model: "${spec}" is neither an existing folder nor a hub id. Give a folder with config.json and model.safetensors, or a hub id such as gpt2, gpt2-medium, distilgpt2.`);
  return fetchHubModel(spec);
}
