import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Readable, Writable } from 'node:stream';
import { skipUnlessInCi } from './ci.js';

/** Debian's chromium (CI's .ci/run installs it). */
export const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

/** Rendering tests are skipped only outside CI when Chromium is missing; in CI they run and fail, naming it. */
export const SKIP_RENDERING = skipUnlessInCi(CHROMIUM ? undefined : 'the HTML rendering tests: chromium not found (apt-get install chromium)');

export interface PageReport {
  /** console errors, uncaught exceptions and browser log errors */
  errors: string[];
  /** URLs the page requested other than itself */
  requests: string[];
  /** the value of `expression`, evaluated after load */
  value: unknown;
}

/**
 * Opens a local HTML file in headless Chromium, driven over the DevTools protocol on a pipe
 * (--remote-debugging-pipe: no port, no WebSocket, no npm package), and reports console errors, network
 * requests and the value of a JS expression evaluated in the page; optionally saves a full-page screenshot.
 */
export interface ScreenshotOptions {
  /** PNG path */
  path: string;
  /** page region in CSS pixels; default the whole page */
  clip?: { x: number; y: number; width: number; height: number };
  scale?: number;
}

export async function inspectPage(file: string, expression: string, opts: { screenshot?: string | ScreenshotOptions; width?: number; timeoutMs?: number } = {}): Promise<PageReport> {
  if (!CHROMIUM) throw new Error('chromium not found (required in CI): apt-get install chromium');
  const profile = mkdtempSync(join(tmpdir(), 'chromium-profile-'));
  const proc = spawn(CHROMIUM, [
    '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', `--user-data-dir=${profile}`,
    '--remote-debugging-pipe', 'about:blank',
  ], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
  const toBrowser = proc.stdio[3] as Writable, fromBrowser = proc.stdio[4] as Readable;
  let stderr = '';
  proc.stderr!.on('data', (d) => { stderr += d; });

  let nextId = 1;
  const pending = new Map<number, { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  const listeners: ((m: Record<string, unknown>) => void)[] = [];
  let buf = '';
  fromBrowser.on('data', (chunk: Buffer) => {
    buf += chunk.toString('utf8');
    let at: number;
    while ((at = buf.indexOf('\0')) >= 0) {
      const msg = JSON.parse(buf.slice(0, at)) as Record<string, unknown>;
      buf = buf.slice(at + 1);
      const id = msg.id as number | undefined;
      if (id !== undefined && pending.has(id)) {
        const p = pending.get(id)!;
        pending.delete(id);
        if (msg.error) p.reject(new Error(JSON.stringify(msg.error)));
        else p.resolve((msg.result ?? {}) as Record<string, unknown>);
      } else listeners.forEach((l) => l(msg));
    }
  });
  const send = (method: string, params: Record<string, unknown> = {}, sessionId?: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      toBrowser.write(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }) + '\0');
    });

  const errors: string[] = [], requests: string[] = [];
  const url = pathToFileURL(file).href;
  let loaded!: () => void;
  const loadedP = new Promise<void>((r) => { loaded = r; });
  listeners.push((m) => {
    const p = m.params as Record<string, any> | undefined;
    switch (m.method) {
      case 'Runtime.consoleAPICalled':
        if (p!.type === 'error' || p!.type === 'assert') errors.push(`console.${p!.type}: ${p!.args.map((a: any) => a.value ?? a.description).join(' ')}`);
        break;
      case 'Runtime.exceptionThrown':
        errors.push(`exception: ${p!.exceptionDetails?.exception?.description ?? p!.exceptionDetails?.text}`);
        break;
      case 'Log.entryAdded':
        if (p!.entry.level === 'error') errors.push(`log: ${p!.entry.text} ${p!.entry.url ?? ''}`);
        break;
      case 'Network.requestWillBeSent':
        if (p!.request.url !== url) requests.push(p!.request.url);
        break;
      case 'Page.loadEventFired':
        loaded();
        break;
    }
  });

  const timeout = opts.timeoutMs ?? 60_000;
  let timer: NodeJS.Timeout | undefined;
  const work = (async () => {
    const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = (await send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
    for (const d of ['Runtime', 'Log', 'Network', 'Page']) await send(`${d}.enable`, {}, sessionId);
    await send('Emulation.setDeviceMetricsOverride', { width: opts.width ?? 1400, height: 900, deviceScaleFactor: 1, mobile: false }, sessionId);
    await send('Page.navigate', { url }, sessionId);
    await loadedP;
    const r = await send('Runtime.evaluate', { expression, returnByValue: true }, sessionId);
    if (r.exceptionDetails) errors.push(`evaluate: ${JSON.stringify(r.exceptionDetails)}`);
    const value = (r.result as { value?: unknown } | undefined)?.value;
    if (opts.screenshot) {
      const o = typeof opts.screenshot === 'string' ? { path: opts.screenshot } : opts.screenshot;
      const m = (await send('Page.getLayoutMetrics', {}, sessionId)) as { cssContentSize: { width: number; height: number } };
      const clip = o.clip ?? { x: 0, y: 0, width: Math.ceil(m.cssContentSize.width), height: Math.ceil(m.cssContentSize.height) };
      const shot = await send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true, clip: { ...clip, scale: o.scale ?? 1 } }, sessionId);
      writeFileSync(o.path, Buffer.from(shot.data as string, 'base64'));
    }
    await send('Browser.close').catch(() => undefined);
    return value;
  })();
  try {
    const value = await Promise.race([work, new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new Error(`chromium timed out after ${timeout} ms; stderr:\n${stderr.slice(-2000)}`)), timeout); })]);
    return { errors, requests, value };
  } finally {
    clearTimeout(timer);
    // Browser.close lets chromium exit on its own; kill it if it has not after 5 s, and wait before removing its profile.
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  }
}
