#!/usr/bin/env python3
"""The GPT-2 small forward of bench/harvest.ts in PyTorch, for the side-by-side ratio (bench only).

Same shape (12 layers, d_model 768, 12 heads, vocab 50257), random weights, batch 8 x context 128, no_grad,
float32, 2 threads (the machine's cores); times the forward with all 12 blocks and with 6 (what the harvest
runs for blocks.6.hook_resid_pre). Installs Debian's python3-torch (+ libopenblas0-pthread) with apt-get when
missing. Prints a human line per case and, last, a JSON line {"layers_12": tok/s, "layers_6": tok/s}.
"""
import argparse
import json
import subprocess
import sys
import time


def ensure_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        print("installing python3-torch and libopenblas0-pthread with apt-get (bench only) ...", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "python3-torch", "libopenblas0-pthread"], check=True, stdout=sys.stderr)
        if sys.executable != "/usr/bin/python3":
            sys.exit(subprocess.call(["/usr/bin/python3", *sys.argv]))


ensure_torch()
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def make_weights(n_layer, d, v, p, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = lambda *s, std=0.02: torch.randn(*s, generator=g) * std  # noqa: E731
    blocks = []
    for _ in range(n_layer):
        blocks.append(dict(ln1=(torch.ones(d), torch.zeros(d)), attn=(n(d, 3 * d), torch.zeros(3 * d)),
                           proj=(n(d, d, std=0.02 / (2 * n_layer) ** 0.5), torch.zeros(d)), ln2=(torch.ones(d), torch.zeros(d)),
                           fc=(n(d, 4 * d), torch.zeros(4 * d)), mproj=(n(4 * d, d, std=0.02 / (2 * n_layer) ** 0.5), torch.zeros(d))))
    return dict(wte=n(v, d), wpe=n(p, d), blocks=blocks)


def forward(w, tokens, n_blocks, n_head):
    B, T = tokens.shape
    x = w["wte"][tokens] + w["wpe"][:T]
    d = x.shape[-1]
    dh = d // n_head
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    for b in w["blocks"][:n_blocks]:
        h = F.layer_norm(x, (d,), *b["ln1"], eps=1e-5)
        q, k, v = (h @ b["attn"][0] + b["attn"][1]).split(d, dim=-1)
        q, k, v = (t.view(B, T, n_head, dh).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / dh**0.5
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        z = (att @ v).transpose(1, 2).reshape(B, T, d)
        x = x + z @ b["proj"][0] + b["proj"][1]
        h = F.layer_norm(x, (d,), *b["ln2"], eps=1e-5)
        x = x + F.gelu(h @ b["fc"][0] + b["fc"][1], approximate="tanh") @ b["mproj"][0] + b["mproj"][1]
    return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    w = make_weights(12, 768, 50257, 1024)
    tokens = torch.randint(0, 50257, (a.batch, a.context), generator=torch.Generator().manual_seed(7))
    out = {}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, BLAS: {'openblas' if 'openblas' in torch.__config__.show().lower() else 'see torch.__config__'}")
    for n_blocks in (12, 6):
        times = []
        with torch.no_grad():
            for r in range(a.reps + 1):
                t0 = time.perf_counter()
                forward(w, tokens, n_blocks, 12).contiguous().numpy()
                if r > 0:
                    times.append(time.perf_counter() - t0)
        med = sorted(times)[len(times) // 2]
        out[f"layers_{n_blocks}"] = a.batch * a.context / med
        print(f"forward, {n_blocks:2d} blocks: median {med:.2f} s per {a.batch * a.context} tokens -> {out[f'layers_{n_blocks}']:.0f} tokens/s")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
