import { describe, expect, it } from 'vitest';
import { describeGpuBinding, gpusForWorkers, openableNvidiaNodes, parseNvidiaSmi, resolveGpuBinding } from '../src/backend/gpu-binding.js';
import { gpuMemoryBytes } from '../src/backend/memory.js';

/**
 * GPU binding (issue 26 item 6), with injected environments, device nodes and nvidia-smi output (no GPU here): a
 * worker or Slurm task uses the GPU its scheduler bound to it, mapped to Dawn's adapter by name where that tells it
 * apart; where it cannot, the binding says what to configure; memory sizing uses that GPU's memory.
 */
const GiB = 1024 ** 3;
// nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits on a node of 4 H100s
const H100x4 = parseNvidiaSmi([
  '0, GPU-aaaa0000-1111-2222-3333-444455556666, NVIDIA H100 80GB HBM3, 81559',
  '1, GPU-bbbb0000-1111-2222-3333-444455556666, NVIDIA H100 80GB HBM3, 81559',
  '2, GPU-cccc0000-1111-2222-3333-444455556666, NVIDIA H100 80GB HBM3, 81559',
  '3, GPU-dddd0000-1111-2222-3333-444455556666, NVIDIA H100 80GB HBM3, 81559',
].join('\n'));
// a mixed workstation: a 24 GiB and a 48 GiB card
const MIXED = parseNvidiaSmi('0, GPU-1234, NVIDIA GeForce RTX 4090, 24564\n1, GPU-5678, NVIDIA RTX A6000, 49140\n');

describe('GPU binding', () => {
  it('parses nvidia-smi (memory in MiB), skipping lines that are not rows', () => {
    expect(H100x4).toHaveLength(4);
    expect(H100x4[2]).toEqual({ index: 2, uuid: 'GPU-cccc0000-1111-2222-3333-444455556666', name: 'NVIDIA H100 80GB HBM3', memoryBytes: 81559 * 1024 ** 2 });
    expect(parseNvidiaSmi('NVIDIA-SMI has failed\n\n')).toEqual([]);
  });

  it('a Slurm task constrained to its GPU (ConstrainDevices): the only one it can open, Dawn\'s own adapter, its memory', () => {
    const b = resolveGpuBinding({ SLURM_STEP_GPUS: '2', CUDA_VISIBLE_DEVICES: '0' }, [2], [H100x4[2]]);
    expect(b).toMatchObject({ source: 'CUDA_VISIBLE_DEVICES=0', gpu: H100x4[2], dawnFlags: [] });
    expect(b.problem).toBeUndefined();
    const s = resolveGpuBinding({ SLURM_STEP_GPUS: '2' }, [2], [H100x4[2]]);
    expect(s).toMatchObject({ source: 'SLURM_STEP_GPUS=2', gpu: H100x4[2], dawnFlags: [] });
    // a container given one GPU: its device node alone
    expect(resolveGpuBinding({}, [1], [H100x4[1]])).toMatchObject({ source: 'device node /dev/nvidia1', gpu: H100x4[1], dawnFlags: [] });
  });

  it('several GPUs visible, the bound one\'s name unique: selected in Dawn by name, sized by its own memory', () => {
    const b = resolveGpuBinding({ CUDA_VISIBLE_DEVICES: '1' }, [0, 1], MIXED);
    expect(b).toMatchObject({ gpu: MIXED[1], dawnFlags: ['adapter=NVIDIA RTX A6000'] });
    expect(gpuMemoryBytes(b, MIXED)).toBe(49140 * 1024 ** 2);
    expect(resolveGpuBinding({ CUDA_VISIBLE_DEVICES: 'GPU-1234' }, [0, 1], MIXED).dawnFlags).toEqual(['adapter=NVIDIA GeForce RTX 4090']);
    expect(resolveGpuBinding({ SLURM_STEP_GPUS: '0' }, [0, 1], MIXED).gpu).toEqual(MIXED[0]);
    // unbound: the smallest, as any of them may run it
    expect(gpuMemoryBytes(resolveGpuBinding({}, [0, 1], MIXED), MIXED)).toBe(24564 * 1024 ** 2);
  });

  it('identical GPUs all visible (no cgroup constraint): the mapping cannot be known, and the problem says what to configure', () => {
    const b = resolveGpuBinding({ SLURM_STEP_GPUS: '3', SLURM_JOB_GPUS: '0,1,2,3' }, [0, 1, 2, 3], H100x4);
    expect(b.gpu).toEqual(H100x4[3]); // its memory is still known
    expect(b.dawnFlags).toEqual([]);
    expect(b.problem).toMatch(/SLURM_STEP_GPUS=3: this task is bound to GPU 3 \(NVIDIA H100 80GB HBM3\), but it can open 4 GPUs of that name.*ConstrainDevices=yes in cgroup\.conf/);
    expect(describeGpuBinding(b, 4)).toEqual([`GPU: ${b.problem}`]);
    expect(resolveGpuBinding({ CUDA_VISIBLE_DEVICES: 'MIG-4f1e' }, [0], H100x4.slice(0, 1)).problem).toMatch(/MIG instance, which Vulkan .* does not see/);
    expect(resolveGpuBinding({ CUDA_VISIBLE_DEVICES: '7' }, [0, 1], MIXED).problem).toMatch(/GPU 7 is not among the 2 this process sees/);
  });

  it('nothing bound, or CUDA_VISIBLE_DEVICES empty: Dawn\'s own choice, no problem', () => {
    expect(resolveGpuBinding({}, [], undefined)).toEqual({ dawnFlags: [] });
    expect(resolveGpuBinding({ CUDA_VISIBLE_DEVICES: '' }, [0, 1, 2, 3], H100x4)).toEqual({ dawnFlags: [] });
    expect(resolveGpuBinding({}, [0, 1, 2, 3], H100x4)).toEqual({ dawnFlags: [] });
    expect(describeGpuBinding({ dawnFlags: [] }, 0)).toEqual([]);
    expect(describeGpuBinding({ dawnFlags: [] }, 4).join(' ')).toMatch(/4 GPUs visible here.*ConstrainDevices=yes/);
  });

  it('hands one GPU to each worker: its own CUDA_VISIBLE_DEVICES entries, Slurm\'s GPUs or every GPU by UUID', () => {
    expect(gpusForWorkers({ CUDA_VISIBLE_DEVICES: '2,3' }, H100x4)).toEqual(['2', '3']);
    expect(gpusForWorkers({ SLURM_STEP_GPUS: '1,3' }, H100x4)).toEqual([H100x4[1].uuid, H100x4[3].uuid]);
    expect(gpusForWorkers({}, MIXED)).toEqual(['GPU-1234', 'GPU-5678']);
    expect(gpusForWorkers({ CUDA_VISIBLE_DEVICES: '-1' }, MIXED)).toEqual([]);
    // and each worker, given one of them, resolves it
    expect(resolveGpuBinding({ CUDA_VISIBLE_DEVICES: 'GPU-5678' }, [0, 1], MIXED).gpu).toEqual(MIXED[1]);
  });

  it('counts the NVIDIA device nodes this process can open (a cgroup leaves the others unopenable)', () => {
    const list = () => ['null', 'nvidiactl', 'nvidia-uvm', 'nvidia0', 'nvidia1', 'nvidia3'];
    expect(openableNvidiaNodes(list, (p) => p !== '/dev/nvidia1')).toEqual([0, 3]);
  });

  it('sizes memory by the bound GPU, not the smallest of the node', () => {
    const nodes = parseNvidiaSmi('0, GPU-a, NVIDIA A100-SXM4-40GB, 40960\n1, GPU-b, NVIDIA A100-SXM4-80GB, 81920\n');
    expect(gpuMemoryBytes(resolveGpuBinding({ CUDA_VISIBLE_DEVICES: '1' }, [0, 1], nodes), nodes)).toBe(80 * GiB);
    // a name inside another's (Dawn matches substrings) does not tell them apart
    const ada = parseNvidiaSmi('0, GPU-a, NVIDIA RTX A6000, 49140\n1, GPU-b, NVIDIA RTX A6000 Ada Generation, 49140\n');
    expect(resolveGpuBinding({ CUDA_VISIBLE_DEVICES: '0' }, [0, 1], ada).problem).toMatch(/can open 2 GPUs of that name/);
    expect(resolveGpuBinding({ CUDA_VISIBLE_DEVICES: '1' }, [0, 1], ada).dawnFlags).toEqual(['adapter=NVIDIA RTX A6000 Ada Generation']);
  });
});
