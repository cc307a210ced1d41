import { readdirSync } from 'node:fs';

/**
 * Whether this machine may have a hardware GPU for Dawn, judged from device nodes without starting Vulkan:
 * on Linux a GPU shows as /dev/dri/renderD* (Mesa, AMD, Intel, NVIDIA's DRM) or /dev/nvidia<N>. `auto` probes
 * webgpu only then, because creating a Dawn adapter on a software driver prints warnings to stderr from native
 * code and costs startup time, only for auto to reject the adapter. Other platforms are always probed.
 */
export function mayHaveHardwareGpu(platform: string = process.platform, list: (dir: string) => string[] = safeList): boolean {
  if (platform !== 'linux') return true;
  return list('/dev/dri').some((n) => /^renderD\d+$/.test(n)) || list('/dev').some((n) => /^nvidia\d+$/.test(n));
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
