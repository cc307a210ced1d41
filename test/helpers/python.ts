import { execFileSync } from 'node:child_process';

/** Runs a Python snippet (numpy available on every machine here) and returns its stdout. */
export function python(code: string, args: string[] = []): string {
  return execFileSync('python3', ['-c', code, ...args], { encoding: 'utf8' });
}
