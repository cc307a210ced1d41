/**
 * Whether the tests run in CI, where a missing prerequisite (Chromium, OpenBLAS, Vulkan, Slurm) must fail its
 * tests instead of skipping them: any set CI other than "", 0, false, no or off (CI=1, CI=yes, CI=true, …).
 */
// No default: isCi(undefined) must mean "unset", not "whatever this process has" (a default made it true in CI).
export function isCi(value: string | undefined): boolean {
  return value !== undefined && !['', '0', 'false', 'no', 'off'].includes(value.trim().toLowerCase());
}

export const IN_CI = isCi(process.env.CI);

/**
 * Whether to skip a group whose prerequisite is missing: never in CI (the group runs and fails there, naming
 * what is missing); elsewhere it is skipped with the reason printed once.
 */
export function skipUnlessInCi(missing: string | undefined, ci = IN_CI): boolean {
  if (missing === undefined || ci) return false;
  console.warn(`skipping: ${missing}`);
  return true;
}
