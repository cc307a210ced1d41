import { vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { setQuiet } from '../../src/ui/log.js';

/** Runs the CLI in-process (main(argv)) with stderr captured and stdout silenced. */
export async function runMain(args: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((stderr += String(s)), true));
  const o = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  setQuiet(false);
  try {
    return { code: await main(args), stderr };
  } finally {
    setQuiet(true);
    e.mockRestore();
    o.mockRestore();
  }
}
