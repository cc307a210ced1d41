/** Console output for the CLI; tests silence it with setQuiet(true). */
let quiet = process.env.SAE_TRAIN_QUIET === '1';

export function setQuiet(q: boolean): void {
  quiet = q;
}

export function isQuiet(): boolean {
  return quiet;
}

export function info(msg: string): void {
  if (!quiet) process.stdout.write(msg + '\n');
}

export function warn(msg: string): void {
  if (!quiet) process.stderr.write(`warning: ${msg}\n`);
}
