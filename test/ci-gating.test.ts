import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isCi, skipUnlessInCi } from './helpers/ci.js';

/**
 * "Required in CI" means any truthy CI, in every test that gates on it, and a missing prerequisite never skips a
 * group in CI (Chromium for the rendering tests, OpenBLAS, Vulkan, Slurm): the group runs there and fails.
 */
describe('CI gating', () => {
  it('counts CI=1, yes, true, TRUE, any other value as CI; unset, "", 0, false, no, off as not', () => {
    for (const v of ['1', 'yes', 'true', 'TRUE', 'True', 'on', 'github-actions']) expect(isCi(v), v).toBe(true);
    for (const v of [undefined, '', '0', 'false', 'FALSE', 'no', 'off', ' false ']) expect(isCi(v), String(v)).toBe(false);
  });

  it('skips a group with a missing prerequisite only outside CI', () => {
    expect(skipUnlessInCi('chromium not found', true)).toBe(false);
    expect(skipUnlessInCi('chromium not found', false)).toBe(true);
    expect(skipUnlessInCi(undefined, false)).toBe(false);
  });

  it('every test file gates through test/helpers/ci.ts, and the rendering tests are not skipped on a missing Chromium in CI', () => {
    const files = [...readdirSync('test').map((f) => join('test', f)), ...readdirSync('test/helpers').map((f) => join('test/helpers', f))]
      .filter((f) => f.endsWith('.ts') && f !== join('test', 'ci-gating.test.ts') && f !== join('test/helpers', 'ci.ts'));
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      expect(/process\.env\.CI\b/.test(text), `${f} reads process.env.CI itself (use IN_CI from test/helpers/ci.ts)`).toBe(false);
      expect(/skipIf\(\s*!CHROMIUM\s*\)/.test(text), `${f} skips on a missing Chromium even in CI (use SKIP_RENDERING)`).toBe(false);
    }
  });
});
