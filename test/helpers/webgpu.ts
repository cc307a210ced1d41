import { probeWebGpu, type AdapterRecord } from '../../src/backend/webgpu.js';
import { IN_CI } from './ci.js';

/**
 * The WebGPU adapter for the webgpu test group, or undefined (tests skipped with a message) on a developer
 * machine without a Vulkan driver. In CI (any truthy CI) a missing adapter is an error: .ci/run installs Mesa 25 lavapipe.
 */
export async function webgpuForTests(): Promise<AdapterRecord | undefined> {
  const a = await probeWebGpu();
  if (a) return a;
  const why = 'no WebGPU adapter (Dawn found no Vulkan driver): install libvulkan1 and Mesa 25 lavapipe (.ci/run shows how)';
  if (IN_CI) throw new Error(`webgpu tests: ${why}.`);
  console.warn(`skipping the webgpu tests: ${why}.`);
  return undefined;
}

/** max |a − b| / max |b|: relative error in the max norm. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}
