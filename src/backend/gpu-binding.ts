import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readdirSync } from 'node:fs';

/**
 * Which GPU this process was given, and how to make Dawn (webgpu) use it. A scheduler binds a GPU to a task by
 * CUDA_VISIBLE_DEVICES (indices or GPU-<uuid>), SLURM_STEP_GPUS / SLURM_JOB_GPUS (Slurm's GPU indices), or by
 * leaving only that GPU's device node usable (Slurm's ConstrainDevices, a container's --gpus). Vulkan, which Dawn
 * runs on, does not read CUDA_VISIBLE_DEVICES, and Dawn's Node bindings choose an adapter only by a substring of
 * its name (`create(['adapter=<name>'])`). So the bound GPU maps to a Dawn adapter when it is the only NVIDIA GPU
 * this process can open, or when its name is unique among those it can; otherwise (several identical GPUs
 * visible) the mapping cannot be known, and `problem` says what to configure.
 */

/** One row of `nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits`. */
export interface NvidiaGpu {
  index: number;
  uuid: string;
  name: string;
  memoryBytes: number;
}

export const NVIDIA_SMI_QUERY = ['--query-gpu=index,uuid,name,memory.total', '--format=csv,noheader,nounits'];

/** Parses nvidia-smi's CSV (memory in MiB); malformed lines are skipped. */
export function parseNvidiaSmi(csv: string): NvidiaGpu[] {
  return csv.split('\n').flatMap((line) => {
    const f = line.split(',').map((s) => s.trim());
    if (f.length < 4) return [];
    const index = Number(f[0]), mib = Number(f[f.length - 1]);
    if (!Number.isInteger(index) || !(mib > 0)) return [];
    return [{ index, uuid: f[1], name: f.slice(2, -1).join(','), memoryBytes: mib * 1024 ** 2 }];
  });
}

export interface GpuBinding {
  /** What bound the GPU: "CUDA_VISIBLE_DEVICES=2", "SLURM_STEP_GPUS=3", "device node /dev/nvidia1"; absent when nothing did. */
  source?: string;
  /** The GPU this process uses, when known. */
  gpu?: NvidiaGpu;
  /** Flags for Dawn's create(): `adapter=<name>` selecting the bound GPU (empty: Dawn's own choice). */
  dawnFlags: string[];
  /** Why the bound GPU cannot be told apart from others Dawn sees, and what to configure; absent when it can. */
  problem?: string;
}

/** The fix when identical GPUs are visible to a task bound to one of them. */
export const GPU_BINDING_FIX =
  'Let each task see only its own GPU: on Slurm set ConstrainDevices=yes in cgroup.conf (tasks then get their GPU by --gpus-per-task), ' +
  'in a container expose one GPU (docker run --gpus device=N), or run one GPU task per node.';

const EMPTY = new Set(['', '-1', 'none', 'nodevfiles', 'void']);

/**
 * Pure: the binding from the environment, the NVIDIA device nodes this process can open (their minor numbers) and
 * nvidia-smi's rows (the GPUs it can see; undefined when nvidia-smi is absent).
 */
export function resolveGpuBinding(env: NodeJS.ProcessEnv, openableNodes: readonly number[], smi: readonly NvidiaGpu[] | undefined): GpuBinding {
  const visible = smi ?? [];
  const nameFlag = (g: NvidiaGpu | undefined) => (g && g.name ? [`adapter=${g.name}`] : []);
  const cuda = env.CUDA_VISIBLE_DEVICES?.trim();
  const slurm = (env.SLURM_STEP_GPUS ?? env.SLURM_JOB_GPUS)?.trim();
  let source: string | undefined;
  let gpu: NvidiaGpu | undefined;
  let unresolved: string | undefined;
  if (cuda !== undefined && !EMPTY.has(cuda.toLowerCase())) {
    const first = cuda.split(',')[0].trim();
    source = `CUDA_VISIBLE_DEVICES=${cuda}`;
    if (/^MIG-/i.test(first)) return { source, dawnFlags: [], problem: `${source}: a MIG instance, which Vulkan (and so Dawn) does not see; give this task a whole GPU, or use backend: wasm.` };
    // an index counts the GPUs this process sees (in PCI bus order with CUDA_DEVICE_ORDER=PCI_BUS_ID, as nvidia-smi counts them)
    gpu = /^\d+$/.test(first) ? (visible.length === 1 ? visible[0] : visible[Number(first)]) : visible.find((g) => g.uuid.toLowerCase().startsWith(first.toLowerCase()));
    if (!gpu) unresolved = first;
  } else if (slurm) {
    const ids = slurm.split(',').map((s) => s.trim()).filter(Boolean);
    source = `${env.SLURM_STEP_GPUS !== undefined ? 'SLURM_STEP_GPUS' : 'SLURM_JOB_GPUS'}=${slurm}`;
    // Slurm's indices are the node's; a constrained task sees only its GPUs (renumbered from 0)
    gpu = visible.length <= ids.length ? visible[0] : visible.find((g) => String(g.index) === ids[0]);
    if (!gpu) unresolved = ids[0];
  } else if (openableNodes.length === 1) {
    source = `device node /dev/nvidia${openableNodes[0]}`;
    gpu = visible.length === 1 ? visible[0] : undefined;
  } else {
    return { dawnFlags: [] }; // nothing bound this process to a GPU: Dawn's own choice
  }
  const seen = Math.max(visible.length, openableNodes.length);
  if (seen <= 1) return { source, ...(gpu ? { gpu } : {}), dawnFlags: [] }; // the only NVIDIA GPU it can open: Dawn's own choice
  if (!gpu)
    return { source, dawnFlags: [], problem: `${source}: GPU ${unresolved ?? '?'} is not among the ${seen} this process sees${smi ? ` (nvidia-smi: ${visible.map((g) => g.index).join(', ')})` : ' (nvidia-smi not found)'}, so Dawn's adapter for it is not known. ${GPU_BINDING_FIX}` };
  // Dawn matches a substring of the adapter's name: unique means no other visible GPU's name contains it
  const same = visible.filter((g) => g.name.includes(gpu.name));
  if (same.length === 1) return { source, gpu, dawnFlags: nameFlag(gpu) };
  return {
    source, gpu, dawnFlags: [],
    problem: `${source}: this task is bound to GPU ${gpu.index} (${gpu.name}), but it can open ${same.length} GPUs of that name, and Dawn tells adapters apart only by name: it would run on the first one, which may be another task's. ${GPU_BINDING_FIX}`,
  };
}

/** NVIDIA device nodes (/dev/nvidia<N>) this process can open: a cgroup or container hides the others. */
export function openableNvidiaNodes(list: (dir: string) => string[] = safeList, canOpen: (path: string) => boolean = openable): number[] {
  return list('/dev').flatMap((n) => (/^nvidia\d+$/.test(n) && canOpen(`/dev/${n}`) ? [Number(n.slice(6))] : [])).sort((a, b) => a - b);
}

let smiMemo: NvidiaGpu[] | undefined | null = null;
/** nvidia-smi's GPUs (once per process), or undefined when it is not there. */
export function nvidiaSmiGpus(): NvidiaGpu[] | undefined {
  if (smiMemo !== null) return smiMemo;
  try {
    smiMemo = parseNvidiaSmi(execFileSync('nvidia-smi', NVIDIA_SMI_QUERY, { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }));
  } catch {
    smiMemo = undefined;
  }
  return smiMemo;
}

let bindingMemo: GpuBinding | undefined;
/** This process's binding (memoized): only asks nvidia-smi when an NVIDIA device node or a binding variable exists. */
export function gpuBinding(env: NodeJS.ProcessEnv = process.env): GpuBinding {
  if (bindingMemo) return bindingMemo;
  const nodes = openableNvidiaNodes();
  const asked = nodes.length > 0 || env.CUDA_VISIBLE_DEVICES !== undefined || env.SLURM_STEP_GPUS !== undefined || env.SLURM_JOB_GPUS !== undefined;
  return (bindingMemo = resolveGpuBinding(env, nodes, asked ? nvidiaSmiGpus() : undefined));
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function openable(path: string): boolean {
  try {
    closeSync(openSync(path, 'r'));
    return true;
  } catch {
    return false;
  }
}

/**
 * The GPUs a process may hand out to its worker processes, one CUDA_VISIBLE_DEVICES value each: its own
 * CUDA_VISIBLE_DEVICES entries, else Slurm's GPUs, else every GPU nvidia-smi lists (by UUID, which a worker matches
 * exactly). Pure.
 */
export function gpusForWorkers(env: NodeJS.ProcessEnv, smi: readonly NvidiaGpu[] | undefined): string[] {
  const cuda = env.CUDA_VISIBLE_DEVICES?.trim();
  if (cuda !== undefined) return EMPTY.has(cuda.toLowerCase()) ? [] : cuda.split(',').map((s) => s.trim()).filter(Boolean);
  const slurm = (env.SLURM_STEP_GPUS ?? env.SLURM_JOB_GPUS)?.trim();
  const visible = smi ?? [];
  if (slurm) {
    const ids = slurm.split(',').map((s) => s.trim()).filter(Boolean);
    const rows = visible.length <= ids.length ? visible : visible.filter((g) => ids.includes(String(g.index)));
    return rows.map((g) => g.uuid);
  }
  return visible.map((g) => g.uuid);
}

/** What `sae-train plan` says about the GPU binding (pure): nothing on a machine without NVIDIA GPUs. */
export function describeGpuBinding(b: GpuBinding, visible: number): string[] {
  const out: string[] = [];
  if (b.problem) out.push(`GPU: ${b.problem}`);
  else if (b.gpu) out.push(`GPU: ${b.source} → GPU ${b.gpu.index} (${b.gpu.name}, ${Math.round(b.gpu.memoryBytes / 1024 ** 3)} GiB)${b.dawnFlags.length ? ', selected in Dawn by its name' : ''}; memory sizing uses it.`);
  else if (b.source) out.push(`GPU: ${b.source}; the only NVIDIA GPU this process can open is the one webgpu runs on.`);
  if (visible > 1 && !b.problem)
    out.push(`GPU: ${visible} GPUs visible here. Slurm array tasks (and workers) each use the GPU bound to them where Dawn can tell it apart: when a task sees only its own GPU, or its GPU's name is unique on the node. With several identical GPUs per node: ${GPU_BINDING_FIX}`);
  return out;
}
