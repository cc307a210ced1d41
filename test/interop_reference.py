"""Independent numpy reimplementation of how SAELens (5.x and 6.x) and sparsify encode and decode, for
test/interop-formats.test.ts. numpy only (no torch, no safetensors package).

Usage: python3 test/interop_reference.py CASES.json
CASES.json: [{"name", "folder", "ours"}] where folder is a checkpoint folder in the tool's own layout and
ours a safetensors file holding x [n, d_in] and sae-train's f [n, d_sae] and xhat [n, d_in] for that x.
Prints one JSON line per case: {"name", "f_err", "xhat_err", "scale"} (max abs differences; scale = max |xhat|).

Each tool's forward pass is written from its source, as that tool computes it (no folding of factors):
- SAELens 6.x sae_lens/saes/{sae,standard_sae,jumprelu_sae,topk_sae}.py: process_sae_in (runtime norm in,
  minus b_dec * apply_b_dec_to_input), hidden_pre = sae_in @ W_enc + b_enc, activation (ReLU; JumpReLU
  ReLU(h) * (h > threshold); TopK: topk(h * ||W_dec||) if rescale_acts_by_decoder_norm, ReLU, scatter),
  decode f (/ ||W_dec|| for rescaled topk) @ W_dec + b_dec, runtime norm out. expected_average_only_in as the
  ActivationScaler does in SAELens' evals: scale x by scaling_factor before the SAE, unscale x_hat after.
- SAELens 5.x sae_lens/sae.py: the same, with activation_fn_str topk (TopK: topk then ReLU) and
  finetuning_scaling_factor (decode (f * scaling_factor) @ W_dec + b_dec).
- sparsify sparsify/sparse_coder.py + fused_encoder.py: pre = ReLU((x - b_dec) @ encoder.weight.T + encoder.bias),
  top-k of pre, decode top_acts @ W_dec[top_indices] + b_dec.
"""
import json
import os
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
        data = fh.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (path, name, info["dtype"])
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(info["shape"]).astype(np.float64)
    return out


def topk_scatter(h, k, relu_after):
    """torch.topk(h, k) along the last axis, values ReLU'd (relu_after) and scattered into zeros."""
    idx = np.argpartition(-h, k - 1, axis=-1)[:, :k]
    vals = np.take_along_axis(h, idx, axis=-1)
    if relu_after:
        vals = np.maximum(vals, 0)
    out = np.zeros_like(h)
    np.put_along_axis(out, idx, vals, axis=-1)
    return out


def saelens_forward(folder, x):
    cfg = json.load(open(os.path.join(folder, "cfg.json")))
    w = read_safetensors(os.path.join(folder, "sae_weights.safetensors"))
    meta = cfg.get("metadata", {})
    v6 = int(str(meta.get("sae_lens_version", cfg.get("sae_lens_version", "0"))).split(".")[0]) >= 6
    arch = cfg.get("architecture", "standard")
    k = cfg.get("k")
    if not v6 and cfg.get("activation_fn_str") == "topk":
        arch, k = "topk", cfg["activation_fn_kwargs"]["k"]
    norm = cfg.get("normalize_activations", "none")
    if norm is True:
        norm = "expected_average_only_in"
    if norm in (False, None):
        norm = "none"
    apply = cfg.get("apply_b_dec_to_input", True)
    d_in = cfg["d_in"]

    scaler = 1.0
    if norm == "expected_average_only_in":
        scaler = json.load(open(os.path.join(folder, "activation_scaler.json")))["scaling_factor"]
    xs = x * scaler  # ActivationScaler.scale

    # run_time_activation_norm_fn_in
    if norm == "constant_norm_rescale":
        coeff = np.sqrt(d_in) / np.linalg.norm(xs, axis=-1, keepdims=True)
        sae_in = xs * coeff
    elif norm == "layer_norm":
        mu = xs.mean(-1, keepdims=True)
        c = xs - mu
        std = c.std(-1, ddof=1, keepdims=True)
        sae_in = c / (std + 1e-5)
    else:
        sae_in = xs
    sae_in = sae_in - w["b_dec"] * apply
    h = sae_in @ w["W_enc"] + w["b_enc"]
    dec_norm = np.linalg.norm(w["W_dec"], axis=-1)
    rescale = arch == "topk" and cfg.get("rescale_acts_by_decoder_norm", False)
    if arch == "standard":
        f = np.maximum(h, 0)
    elif arch == "jumprelu":
        f = np.maximum(h, 0) * (h > w["threshold"])
    elif arch == "topk":
        f = topk_scatter(h * dec_norm if rescale else h, k, relu_after=True)
    else:
        raise SystemExit(f"unknown architecture {arch}")
    fd = f / dec_norm if rescale else f
    if not v6 and cfg.get("finetuning_scaling_factor"):
        fd = fd * w["scaling_factor"]
    out = fd @ w["W_dec"] + w["b_dec"]
    if norm == "constant_norm_rescale":
        out = out / coeff
    elif norm == "layer_norm":
        out = out * std + mu
    return f, out / scaler  # ActivationScaler.unscale


def sparsify_forward(folder, x):
    cfg = json.load(open(os.path.join(folder, "cfg.json")))
    w = read_safetensors(os.path.join(folder, "sae.safetensors"))
    pre = np.maximum((x - w["b_dec"]) @ w["encoder.weight"].T + w["encoder.bias"], 0)
    k = cfg["k"]
    idx = np.argpartition(-pre, k - 1, axis=-1)[:, :k]
    top_acts = np.take_along_axis(pre, idx, axis=-1)
    xhat = np.einsum("nk,nkd->nd", top_acts, w["W_dec"][idx]) + w["b_dec"]
    f = np.zeros_like(pre)
    np.put_along_axis(f, idx, top_acts, axis=-1)
    return f, xhat


def main():
    cases = json.load(open(sys.argv[1]))
    for c in cases:
        ours = read_safetensors(c["ours"])
        x = ours["x"]
        if os.path.exists(os.path.join(c["folder"], "sae.safetensors")):
            f, xhat = sparsify_forward(c["folder"], x)
        else:
            f, xhat = saelens_forward(c["folder"], x)
        print(json.dumps({
            "name": c["name"],
            "f_err": float(np.abs(f - ours["f"]).max()),
            "xhat_err": float(np.abs(xhat - ours["xhat"]).max()),
            "scale": float(np.abs(xhat).max()),
            "l0": float((f > 0).sum(-1).mean()),
        }))


if __name__ == "__main__":
    main()
