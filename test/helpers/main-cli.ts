import { vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { setQuiet } from '../../src/ui/log.js';

/** Runs the CLI in-process (main(argv)) with stderr and stdout captured (`both`: the two interleaved, as printed). */
export async function runMain(args: string[]): Promise<{ code: number; stderr: string; stdout: string; both: string }> {
  let stderr = '', stdout = '', both = '';
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((stderr += String(s)), (both += String(s)), true));
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((stdout += String(s)), (both += String(s)), true));
  setQuiet(false);
  try {
    return { code: await main(args), stderr, stdout, both };
  } finally {
    setQuiet(true);
    e.mockRestore();
    o.mockRestore();
  }
}
