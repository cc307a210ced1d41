#!/usr/bin/env python3
"""PyTorch reference for bench/train-sae.ts: the same SAE training step on the CPU.

One step: f = ReLU((x - b_dec) W_enc + b_enc), x_hat = f W_dec + b_dec,
loss = mean_b ||x - x_hat||^2 + l1 * mean_b sum_i f_i ||W_dec,i||, backward,
clip_grad_norm_(1), Adam. d_in 768, d_sae 4096, batch 1024; median of several
steps after warm-up, wall time and this process's CPU time; 1 and 2 threads;
one SAE and a sweep of 4.

Needs Debian's python3-torch (1.13) and libopenblas0-pthread; installs them with
apt-get when missing (never a project dependency), then reruns itself under
/usr/bin/python3, where Debian's torch lives.
Usage: python3 bench/torch_sae.py [--steps 7] [--warmup 2]
"""
import os
import re
import subprocess
import sys
import time


def ensure_torch():
    try:
        import torch  # noqa: F401
        return
    except ImportError:
        pass
    system_python = '/usr/bin/python3'
    has = subprocess.run([system_python, '-c', 'import torch'], capture_output=True).returncode == 0 if os.path.exists(system_python) else False
    if not has:
        print('bench/torch_sae.py: installing python3-torch and libopenblas0-pthread with apt-get ...', file=sys.stderr)
        env = {**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'}
        try:
            subprocess.run(['apt-get', 'update', '-qq'], check=True, env=env)
            subprocess.run(['apt-get', 'install', '-y', '-qq', 'python3-torch', 'libopenblas0-pthread'], check=True, env=env)
        except (OSError, subprocess.CalledProcessError) as e:
            sys.exit(f'bench/torch_sae.py: could not install PyTorch ({e}). Run as root: apt-get install python3-torch libopenblas0-pthread')
    if os.path.realpath(sys.executable) != os.path.realpath(system_python) and not os.environ.get('TORCH_SAE_REEXEC'):
        os.execve(system_python, [system_python, *sys.argv], {**os.environ, 'TORCH_SAE_REEXEC': '1'})
    import torch  # noqa: F401


def arg(name, default):
    return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


def main():
    ensure_torch()
    import torch

    steps, warmup = arg('--steps', 7), arg('--warmup', 2)
    D, F, B, L1 = 768, 4096, 1024, 5.0
    torch.manual_seed(0)
    x = torch.randn(B, D)

    def new_sae(seed):
        g = torch.Generator().manual_seed(seed)
        W_dec = torch.randn(F, D, generator=g)
        W_dec = 0.1 * W_dec / W_dec.norm(dim=1, keepdim=True)
        p = {
            'W_enc': W_dec.t().clone().requires_grad_(),
            'b_enc': torch.zeros(F, requires_grad=True),
            'W_dec': W_dec.clone().requires_grad_(),
            'b_dec': torch.zeros(D, requires_grad=True),
        }
        return p, torch.optim.Adam(p.values(), lr=4e-4, betas=(0.9, 0.999), eps=1e-8)

    def step(p, opt):
        f = torch.relu((x - p['b_dec']) @ p['W_enc'] + p['b_enc'])
        x_hat = f @ p['W_dec'] + p['b_dec']
        mse = (x_hat - x).pow(2).sum(1).mean()
        loss = mse + L1 * (f * p['W_dec'].norm(dim=1)).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(p.values(), 1.0)
        opt.step()
        return loss.item()

    def timed(fn):
        wall, cpu = [], []
        for i in range(warmup + steps):
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            if i >= warmup:
                wall.append(time.perf_counter() - w0)
                cpu.append(time.process_time() - c0)
        return sorted(wall)[len(wall) // 2], sorted(cpu)[len(cpu) // 2]

    m = re.search(r'BLAS_INFO=(\w+)', torch.__config__.show())
    blas = f'BLAS_INFO={m.group(1) if m else "?"}; libblas.so.3 is whichever BLAS Debian\'s alternatives select (OpenBLAS with libopenblas0-pthread)'
    print(f'PyTorch {torch.__version__} CPU ({blas}); d_in {D}, d_sae {F}, batch {B}; median of {steps} steps after {warmup} warm-up')
    torch.set_num_threads(1)
    w = torch.randn(D, F)
    wall, cpu = timed(lambda: x @ w)
    print(f'calibration, plain matmul [{B},{D}]x[{D},{F}], 1 thread: {2 * B * D * F / 1e9 / wall:.1f} GFLOP/s wall, {2 * B * D * F / 1e9 / cpu:.1f} GFLOP/s CPU')
    for threads in (1, 2):
        torch.set_num_threads(threads)
        sae = new_sae(0)
        w, c = timed(lambda: step(*sae))
        print(f'{threads} thread(s), one SAE:     {w * 1000:.0f} ms wall = {B / w:.0f} tokens/s  (CPU {c * 1000:.0f} ms)')
        saes = [new_sae(s) for s in range(4)]
        w, c = timed(lambda: [step(*s) for s in saes])
        print(f'{threads} thread(s), sweep of 4:  {w * 1000:.0f} ms wall = {B / w:.0f} tokens/s of data, {4 * B / w:.0f} SAE-tokens/s  (CPU {c * 1000:.0f} ms)')


if __name__ == '__main__':
    main()
