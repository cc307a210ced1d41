#!/usr/bin/env python3
"""PyTorch on CUDA, side by side with bench/gpu.ts (the webgpu backend) on the same GPU, in fp32 and TF32.

Same work as bench/gpu.ts: (1) one SAE training step (loss with norm-weighted L1, backward, clip_grad_norm_(1),
Adam), (2) a sweep of 4 SAEs on the same batch, (3) a GPT-2-small-shaped forward (random weights) to
blocks.8.hook_resid_pre with the activations copied back to the host. Each step ends in a host read (loss.item(),
.cpu()), as the tfjs step ends in reading its statistics. Prints one JSON line per case.
Usage: python3 bench/torch_gpu.py [--d-in 768 --d-sae 24576 --batch 4096 --sweep 4 --gpt-batch 32 --gpt-ctx 128
       --gpt-layers 8 --gpt-vocab 50257 --reps 10 --warmup 3 --device cuda]
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F


def median_time(fn, reps, warmup):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2]


def new_sae(d_in, d_sae, seed, dev):
    g = torch.Generator(device='cpu').manual_seed(seed)
    W_dec = torch.randn(d_sae, d_in, generator=g)
    W_dec = 0.1 * W_dec / W_dec.norm(dim=1, keepdim=True)
    p = {k: v.to(dev).requires_grad_() for k, v in
         {'W_enc': W_dec.t().contiguous(), 'b_enc': torch.zeros(d_sae), 'W_dec': W_dec, 'b_dec': torch.zeros(d_in)}.items()}
    return p, torch.optim.Adam(p.values(), lr=4e-4, betas=(0.9, 0.999), eps=1e-8)


def sae_step(p, opt, x, l1=5.0):
    f = torch.relu((x - p['b_dec']) @ p['W_enc'] + p['b_enc'])
    x_hat = f @ p['W_dec'] + p['b_dec']
    loss = (x_hat - x).pow(2).sum(1).mean() + l1 * (f * p['W_dec'].norm(dim=1)).sum(1).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(p.values(), 1.0)
    opt.step()
    return loss.item()


def gpt2_weights(n_layer, d, v, n_pos, dev):
    g = torch.Generator(device='cpu').manual_seed(0)
    n = lambda *s, std=0.02: (torch.randn(*s, generator=g) * std).to(dev)  # noqa: E731
    z = lambda *s: torch.zeros(*s, device=dev)  # noqa: E731
    o = lambda *s: torch.ones(*s, device=dev)  # noqa: E731
    blocks = [dict(ln1=(o(d), z(d)), attn=(n(d, 3 * d), z(3 * d)), proj=(n(d, d), z(d)), ln2=(o(d), z(d)),
                   fc=(n(d, 4 * d), z(4 * d)), mproj=(n(4 * d, d), z(d))) for _ in range(n_layer)]
    return dict(wte=n(v, d), wpe=n(n_pos, d), blocks=blocks)


@torch.no_grad()
def gpt2_to_layer(w, tokens, n_blocks, n_head):
    B, T = tokens.shape
    x = w['wte'][tokens] + w['wpe'][:T]
    d = x.shape[-1]
    dh = d // n_head
    mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
    for b in w['blocks'][:n_blocks]:
        h = F.layer_norm(x, (d,), *b['ln1'], eps=1e-5)
        q, k, v = (h @ b['attn'][0] + b['attn'][1]).split(d, dim=-1)
        q, k, v = (t.view(B, T, n_head, dh).transpose(1, 2) for t in (q, k, v))
        att = ((q @ k.transpose(-2, -1)) / dh**0.5).masked_fill(~mask, float('-inf')).softmax(-1)
        x = x + (att @ v).transpose(1, 2).reshape(B, T, d) @ b['proj'][0] + b['proj'][1]
        h = F.layer_norm(x, (d,), *b['ln2'], eps=1e-5)
        x = x + F.gelu(h @ b['fc'][0] + b['fc'][1], approximate='tanh') @ b['mproj'][0] + b['mproj'][1]
    return x.cpu()  # hook read-back: blocks.{n_blocks}.hook_resid_pre on the host


def main():
    ap = argparse.ArgumentParser()
    for k, v in dict(d_in=768, d_sae=24576, batch=4096, sweep=4, gpt_batch=32, gpt_ctx=128, gpt_layers=8, gpt_vocab=50257, reps=10, warmup=3).items():
        ap.add_argument('--' + k.replace('_', '-'), type=int, default=v)
    ap.add_argument('--device', default='cuda', help='cuda (the bench); cpu only to dry-run this script')
    a = ap.parse_args()
    dev = a.device
    print(json.dumps({'torch': torch.__version__, 'device': torch.cuda.get_device_name(0) if dev == 'cuda' else dev}))
    for mode in ('fp32', 'tf32'):
        torch.backends.cuda.matmul.allow_tf32 = mode == 'tf32'
        torch.backends.cudnn.allow_tf32 = mode == 'tf32'
        x = torch.randn(a.batch, a.d_in, device=dev)
        sae = new_sae(a.d_in, a.d_sae, 0, dev)
        t = median_time(lambda: sae_step(*sae, x), a.reps, a.warmup)
        print(json.dumps({'impl': f'torch-{mode}', 'case': 'sae_step', 'd_in': a.d_in, 'd_sae': a.d_sae, 'batch': a.batch, 'ms': t * 1e3, 'tokens_per_s': a.batch / t}))
        saes = [new_sae(a.d_in, a.d_sae, s, dev) for s in range(a.sweep)]
        t = median_time(lambda: [sae_step(*s, x) for s in saes], a.reps, a.warmup)
        print(json.dumps({'impl': f'torch-{mode}', 'case': f'sweep_{a.sweep}', 'ms': t * 1e3, 'tokens_per_s': a.batch / t}))
        del sae, saes
        w = gpt2_weights(12, 768, a.gpt_vocab, 1024, dev)
        tok = torch.randint(0, a.gpt_vocab, (a.gpt_batch, a.gpt_ctx), device=dev)
        t = median_time(lambda: gpt2_to_layer(w, tok, a.gpt_layers, 12), a.reps, a.warmup)
        print(json.dumps({'impl': f'torch-{mode}', 'case': f'gpt2_small_to_layer_{a.gpt_layers}', 'batch': a.gpt_batch, 'ctx': a.gpt_ctx, 'ms': t * 1e3, 'tokens_per_s': a.gpt_batch * a.gpt_ctx / t}))
        del w
        torch.cuda.empty_cache()


if __name__ == '__main__':
    main()
