#!/usr/bin/env python3
"""Writes a tiny random GPT-2 in Hugging Face format to test/fixtures/gpt2-tiny/ (config.json + model.safetensors).

Fixed seed, so the output is the same on every machine. Weights are larger than GPT-2's 0.02-std init so that
attention patterns and MLP activations are far from trivial and a bug cannot hide in a near-uniform model.
Tensor names follow the `gpt2` hub repo (no `transformer.` prefix), including the `attn.bias` mask buffers that
loaders must ignore. Usage: python3 scripts/make_fixture_gpt2.py [out_dir]
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_numpy  # noqa: E402

CONFIG = {
    "architectures": ["GPT2LMHeadModel"],
    "model_type": "gpt2",
    "activation_function": "gelu_new",
    "n_layer": 2,
    "n_head": 4,
    "n_embd": 64,
    "n_positions": 64,
    "n_ctx": 64,
    "n_inner": None,
    "vocab_size": 512,
    "layer_norm_epsilon": 1e-5,
    "bos_token_id": 511,
    "eos_token_id": 511,
}


def make(seed=1234):
    rng = np.random.default_rng(seed)
    c = CONFIG
    d, v, p, L = c["n_embd"], c["vocab_size"], c["n_positions"], c["n_layer"]
    f = 4 * d
    n = lambda shape, std: (rng.standard_normal(shape) * std).astype(np.float32)  # noqa: E731
    t = {"wte.weight": n((v, d), 0.1), "wpe.weight": n((p, d), 0.05)}
    for l in range(L):
        h = f"h.{l}."
        t[h + "ln_1.weight"] = 1 + n((d,), 0.1)
        t[h + "ln_1.bias"] = n((d,), 0.05)
        t[h + "attn.bias"] = np.tril(np.ones((p, p), np.float32))[None, None]  # causal mask buffer (ignored)
        t[h + "attn.c_attn.weight"] = n((d, 3 * d), 0.2)  # Conv1D layout [in, out]: y = x·W + b
        t[h + "attn.c_attn.bias"] = n((3 * d,), 0.05)
        t[h + "attn.c_proj.weight"] = n((d, d), 0.1)
        t[h + "attn.c_proj.bias"] = n((d,), 0.05)
        t[h + "ln_2.weight"] = 1 + n((d,), 0.1)
        t[h + "ln_2.bias"] = n((d,), 0.05)
        t[h + "mlp.c_fc.weight"] = n((d, f), 0.15)
        t[h + "mlp.c_fc.bias"] = n((f,), 0.05)
        t[h + "mlp.c_proj.weight"] = n((f, d), 0.08)
        t[h + "mlp.c_proj.bias"] = n((d,), 0.05)
    t["ln_f.weight"] = 1 + n((d,), 0.1)
    t["ln_f.bias"] = n((d,), 0.05)
    return t


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "gpt2-tiny")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as fh:
        json.dump(CONFIG, fh, indent=2)
        fh.write("\n")
    st_numpy.save(os.path.join(out, "model.safetensors"), make(), {"format": "pt"})
    print(f"wrote {out}/config.json and model.safetensors")


if __name__ == "__main__":
    main()
