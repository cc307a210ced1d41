import cliProgress from 'cli-progress';
import { isQuiet } from './log.js';

export interface Progress {
  /** Sets the absolute count done, with extra fields shown after the rate (loss, L0, …). */
  update(done: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

/** Set to `ipc` in a worker process: progress goes to the parent as messages instead of a bar (see createMultiProgress). */
export const PROGRESS_ENV = 'SAE_TRAIN_PROGRESS';

/** What a worker process reports about its progress bar; the parent adds up its workers'. */
export interface ProgressMessage {
  type: 'progress';
  label: string;
  done: number;
  total: number;
  /** Done before this process started (resumed), left out of the rate. */
  start: number;
  unit: string;
  fields?: Record<string, string | number>;
}

/** A bar that sends its state to the parent process (at most every 200 ms, and at the end). */
function ipcProgress(label: string, total: number, unit: string, start: number): Progress {
  let last = 0, done = start, fields: Record<string, string | number> | undefined;
  const send = () => process.send?.({ type: 'progress', label, done, total, start, unit, fields } satisfies ProgressMessage);
  send();
  return {
    update(d, f) {
      done = d;
      fields = f;
      if (Date.now() - last > 200) {
        last = Date.now();
        send();
      }
    },
    stop: send,
  };
}

export function fmtDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

/**
 * A progress bar with count, rate and ETA (cli-progress on a terminal; a plain
 * line every 10 s otherwise, so CI logs stay readable). `start` is the count
 * already done when resuming, left out of the rate; `startedAt` is when the
 * counted work began (a bar created after its first piece of work, for one).
 */
export function createProgress(label: string, total: number, unit = 'tok', start = 0, startedAt = Date.now()): Progress {
  if (process.env[PROGRESS_ENV] === 'ipc' && process.send) return ipcProgress(label, total, unit, start);
  const t0 = startedAt;
  const rate = (done: number) => ((done - start) / Math.max(1e-3, (Date.now() - t0) / 1000));
  const extraText = (fields?: Record<string, string | number>) =>
    fields ? Object.entries(fields).map(([k, v]) => `${k} ${typeof v === 'number' ? +v.toPrecision(4) : v}`).join(' | ') : '';
  if (isQuiet()) return { update() {}, stop() {} };
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar({
      format: `${label} |{bar}| {percentage}% | {value}/{total} ${unit} | {speed} ${unit}/s | {extra} | ETA {eta_formatted}`,
      barsize: 24,
      hideCursor: true,
      etaBuffer: 50,
      stream: process.stderr,
    }, cliProgress.Presets.shades_classic);
    bar.start(total, start, { speed: '0', extra: '' });
    return {
      update(done, fields) {
        bar.update(Math.min(done, total), { speed: rate(done).toFixed(0), extra: extraText(fields) });
      },
      stop() {
        bar.stop();
      },
    };
  }
  let last = 0;
  const line = (done: number, fields?: Record<string, string | number>) => {
    const r = rate(done);
    const eta = (total - done) / Math.max(r, 1e-9);
    process.stderr.write(`${label}: ${done}/${total} ${unit} (${((100 * done) / total).toFixed(1)}%) | ${r.toFixed(0)} ${unit}/s | ${extraText(fields)} | ETA ${fmtDuration(eta)}\n`);
  };
  return {
    update(done, fields) {
      if (Date.now() - last > 10_000) {
        last = Date.now();
        line(done, fields);
      }
    },
    stop() {},
  };
}

export interface MultiProgress {
  /** The latest state of worker `i`'s bar. */
  update(worker: number, m: ProgressMessage): void;
  /** A line of text above the bars (or among the plain lines), to stdout (`out`) or stderr. */
  log(line: string, to?: 'out' | 'err'): void;
  stop(): void;
}

/**
 * One display for a stage split over workers: the total done across workers with a true rate (work done in
 * this run over wall time) and ETA, and one line per worker (cli-progress MultiBar on a terminal; plain lines
 * every 10 s otherwise).
 */
export function createMultiProgress(label: string, names: string[]): MultiProgress {
  const t0 = Date.now();
  const state: Array<ProgressMessage | undefined> = names.map(() => undefined);
  const sum = () => {
    let done = 0, total = 0, fresh = 0, unit = 'tok';
    for (const m of state) if (m) ((done += m.done), (total += m.total), (fresh += m.done - m.start), (unit = m.unit));
    const rate = fresh / Math.max(1e-3, (Date.now() - t0) / 1000);
    return { done, total, rate, unit, eta: rate > 0 ? (total - done) / rate : NaN };
  };
  const workerText = (m: ProgressMessage | undefined) => {
    if (!m) return 'starting';
    const extra = m.fields ? ' | ' + Object.entries(m.fields).map(([k, v]) => `${k} ${typeof v === 'number' ? +v.toPrecision(4) : v}`).join(' | ') : '';
    return `${m.label}: ${m.done}/${m.total} ${m.unit} (${((100 * m.done) / Math.max(1, m.total)).toFixed(1)}%)${extra}`;
  };
  if (isQuiet()) return { update() {}, log() {}, stop() {} };
  if (process.stderr.isTTY) {
    const multi = new cliProgress.MultiBar({
      format: '{name} |{bar}| {percentage}% | {text}',
      barsize: 20,
      hideCursor: true,
      stream: process.stderr,
    }, cliProgress.Presets.shades_classic);
    const top = multi.create(1, 0, { name: label, text: '' });
    const bars = names.map((n) => multi.create(1, 0, { name: n, text: 'starting' }));
    const draw = () => {
      const t = sum();
      top.setTotal(Math.max(1, t.total));
      top.update(t.done, { text: `${t.done}/${t.total} ${t.unit} | ${t.rate.toFixed(0)} ${t.unit}/s | ETA ${fmtDuration(t.eta)}` });
    };
    return {
      update(i, m) {
        state[i] = m;
        bars[i].setTotal(Math.max(1, m.total));
        bars[i].update(m.done, { text: workerText(m) });
        draw();
      },
      log(line) {
        multi.log(line + '\n');
      },
      stop() {
        draw();
        multi.stop();
      },
    };
  }
  let last = Date.now();
  const lines = () => {
    const t = sum();
    process.stderr.write(`${label}: ${t.done}/${t.total} ${t.unit} (${((100 * t.done) / Math.max(1, t.total)).toFixed(1)}%) | ${t.rate.toFixed(0)} ${t.unit}/s | ETA ${fmtDuration(t.eta)}\n` +
      names.map((n, i) => `  ${n}: ${workerText(state[i])}\n`).join(''));
  };
  return {
    update(i, m) {
      state[i] = m;
      if (Date.now() - last > 10_000) {
        last = Date.now();
        lines();
      }
    },
    log(line, to = 'err') {
      (to === 'out' ? process.stdout : process.stderr).write(line + '\n');
    },
    stop: lines,
  };
}
