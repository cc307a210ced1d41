import cliProgress from 'cli-progress';
import { isQuiet } from './log.js';

export interface Progress {
  /** Sets the absolute count done, with extra fields shown after the rate (loss, L0, …). */
  update(done: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

function fmtDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

/**
 * A progress bar with count, rate and ETA (cli-progress on a terminal; a plain
 * line every 10 s otherwise, so CI logs stay readable). `start` is the count
 * already done when resuming, left out of the rate.
 */
export function createProgress(label: string, total: number, unit = 'tok', start = 0): Progress {
  const t0 = Date.now();
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
