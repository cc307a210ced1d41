#!/usr/bin/env python3
"""Independent numpy (float64) GPT-2 forward: every hook's activations, logits, loss and finite-difference
gradients for fixed token ids, written to <model_dir>/reference.safetensors (in the manner of llm.c's debug state).

The TypeScript forward (src/model/gpt2.ts) is tested against this file (test/model-gpt2.test.ts). It is written
from the GPT-2 paper/Hugging Face semantics, not from the TypeScript code:
  pre-LN blocks, learned positional embeddings, causal softmax attention scaled by 1/sqrt(d_head),
  GELU tanh approximation ("gelu_new"), Conv1D weights applied as x·W + b, tied unembedding logits = x·W_Eᵀ.
Hook names and shapes follow TransformerLens (hook_pattern [batch, head, query, key], hook_z [batch, pos, head, d_head]).

Usage: python3 scripts/reference_gpt2.py [model_dir]   (default test/fixtures/gpt2-tiny)
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_numpy  # noqa: E402

SEED = 7
BATCH, SEQ = 2, 16


def layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def gelu_new(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def forward(w, cfg, tokens, replace=None):
    """tokens [B, T] int → (hooks dict, logits [B, T, V]). replace: {blocks.{l}.hook_resid_pre: fn(x) → x'}."""
    B, T = tokens.shape
    D, H = cfg["n_embd"], cfg["n_head"]
    dh = D // H
    eps = cfg["layer_norm_epsilon"]
    hooks = {}
    embed = w["wte.weight"][tokens]
    pos = np.broadcast_to(w["wpe.weight"][:T][None], (B, T, D))
    hooks["hook_embed"], hooks["hook_pos_embed"] = embed, pos
    resid = embed + pos
    causal = np.tril(np.ones((T, T), bool))
    for l in range(cfg["n_layer"]):
        p = lambda name: w[f"h.{l}.{name}"]  # noqa: E731
        if replace and f"blocks.{l}.hook_resid_pre" in replace:
            resid = replace[f"blocks.{l}.hook_resid_pre"](resid)
        hooks[f"blocks.{l}.hook_resid_pre"] = resid
        x = layer_norm(resid, p("ln_1.weight"), p("ln_1.bias"), eps)
        qkv = x @ p("attn.c_attn.weight") + p("attn.c_attn.bias")
        q, k, v = (qkv[..., i * D : (i + 1) * D].reshape(B, T, H, dh).transpose(0, 2, 1, 3) for i in range(3))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh)
        scores = np.where(causal, scores, -np.inf)
        scores = scores - scores.max(-1, keepdims=True)
        pattern = np.exp(scores)
        pattern /= pattern.sum(-1, keepdims=True)
        hooks[f"blocks.{l}.attn.hook_pattern"] = pattern
        z = (pattern @ v).transpose(0, 2, 1, 3)  # [B, T, H, dh]
        hooks[f"blocks.{l}.attn.hook_z"] = z
        attn_out = z.reshape(B, T, D) @ p("attn.c_proj.weight") + p("attn.c_proj.bias")
        hooks[f"blocks.{l}.hook_attn_out"] = attn_out
        resid = resid + attn_out
        hooks[f"blocks.{l}.hook_resid_mid"] = resid
        x = layer_norm(resid, p("ln_2.weight"), p("ln_2.bias"), eps)
        post = gelu_new(x @ p("mlp.c_fc.weight") + p("mlp.c_fc.bias"))
        hooks[f"blocks.{l}.mlp.hook_post"] = post
        mlp_out = post @ p("mlp.c_proj.weight") + p("mlp.c_proj.bias")
        hooks[f"blocks.{l}.hook_mlp_out"] = mlp_out
        resid = resid + mlp_out
        hooks[f"blocks.{l}.hook_resid_post"] = resid
    final = layer_norm(resid, w["ln_f.weight"], w["ln_f.bias"], eps)
    hooks["ln_final.hook_normalized"] = final
    logits = final @ w["wte.weight"].T
    return hooks, logits


def token_losses(logits, tokens):
    """Next-token cross-entropy [B, T-1] with a max-shifted log-softmax."""
    z = logits[:, :-1] - logits[:, :-1].max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    tgt = tokens[:, 1:]
    return -np.take_along_axis(logp, tgt[..., None], -1)[..., 0]


def mean_loss(w, cfg, tokens):
    return token_losses(forward(w, cfg, tokens)[1], tokens).mean()


def fd_grad(w, cfg, tokens, name, idx, eps=1e-5):
    """Central finite differences of the mean loss w.r.t. w[name].flat[idx], in float64."""
    out = np.zeros(len(idx))
    for j, i in enumerate(idx):
        orig = w[name].flat[i]
        w[name].flat[i] = orig + eps
        up = mean_loss(w, cfg, tokens)
        w[name].flat[i] = orig - eps
        down = mean_loss(w, cfg, tokens)
        w[name].flat[i] = orig
        out[j] = (up - down) / (2 * eps)
    return out


EPS = 1e-6


def js_rows(p, q):
    """Jensen–Shannon divergence (nats) of the last axis' distributions, 0·log 0 = 0."""
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p > 0, p * np.log(p / m), 0.0)
        b = np.where(q > 0, q * np.log(q / m), 0.0)
    return np.maximum(0.0, (a.sum(-1) + b.sum(-1)) / 2)


def attention_reference(w, cfg, tokens, hooks):
    """eval.attention's reference (test/eval-attention.test.ts): an SAE at blocks.0.hook_resid_pre whose 2·D
    features are ± an orthonormal basis Q (so x̂ = x), with the first basis vector u (the tokens' mean residual direction)
    scaled by EPS in the encoder and 1/EPS in the decoder, so that it is every token's weakest active feature:
    keeping the top D−1 features drops exactly u (x̂ = x − (x·u)u). Dumps the SAE, the spliced patterns at every
    layer (top-k = D−1 and the full SAE) and each query row's Jensen–Shannon divergence from the clean one."""
    D = cfg["n_embd"]
    rng = np.random.default_rng(SEED + 1)  # its own stream: the values above stay as they were
    x0 = hooks["blocks.0.hook_resid_pre"]
    u = x0.mean((0, 1)) / np.linalg.norm(x0.mean((0, 1)))  # the tokens' common direction (no single token's: that one would lack the others)
    Q, _ = np.linalg.qr(np.concatenate([u[:, None], rng.standard_normal((D, D - 1))], 1))  # Q[:, 0] = ±u
    s = np.ones(D)
    s[0] = EPS
    W_enc = np.concatenate([Q * s, -Q * s], 1).astype(np.float32)  # [D, 2D]
    W_dec = np.concatenate([(Q / s).T, -(Q / s).T], 0).astype(np.float32)  # [2D, D]
    We, Wd = W_enc.astype(np.float64), W_dec.astype(np.float64)

    def sae(k):
        def fn(x):
            f = np.maximum(x @ We, 0.0)
            if k is not None:
                kth = -np.sort(-f, -1)[..., k - 1 : k]
                dropped = (f > 0) & (f < kth)
                assert np.all(dropped.sum(-1) <= 1) and np.all(dropped[..., 1:D].sum(-1) + dropped[..., D + 1 :].sum(-1) == 0), "top-k must drop only u"
                f = np.where(f >= kth, f, 0.0)
            return f @ Wd
        return fn

    out = {"attention.W_enc": W_enc, "attention.W_dec": W_dec, "attention.u": u.astype(np.float32)}
    for name, k in (("topk63", D - 1), ("full", None)):
        spliced, _ = forward(w, cfg, tokens, {"blocks.0.hook_resid_pre": sae(k)})
        for l in range(cfg["n_layer"]):
            pat = spliced[f"blocks.{l}.attn.hook_pattern"]
            out[f"attention.{name}.blocks.{l}.attn.hook_pattern"] = pat.astype(np.float32)
            out[f"attention.{name}.blocks.{l}.js"] = js_rows(hooks[f"blocks.{l}.attn.hook_pattern"], pat).astype(np.float32)
    return out


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "gpt2-tiny")
    cfg = json.load(open(os.path.join(d, "config.json")))
    w = {k.removeprefix("transformer."): v.astype(np.float64) for k, v in st_numpy.load(os.path.join(d, "model.safetensors")).items()}
    rng = np.random.default_rng(SEED)
    tokens = rng.integers(0, cfg["vocab_size"], size=(BATCH, SEQ))
    tokens[0, 0] = cfg["bos_token_id"]
    hooks, logits = forward(w, cfg, tokens)
    losses = token_losses(logits, tokens)
    out = {"tokens": tokens.astype(np.int32)}
    out.update({k: v.astype(np.float32) for k, v in hooks.items()})
    out["logits"] = logits.astype(np.float32)
    out["loss_per_token"] = losses.astype(np.float32)
    out["loss"] = np.array([losses.mean()], np.float32)
    # Gradients of the mean loss for a few parameters (the tied embedding gets both paths).
    grads = {
        "ln_f.weight": np.arange(cfg["n_embd"]),
        "h.1.mlp.c_fc.bias": np.arange(0, 4 * cfg["n_embd"], 7),
        "h.0.attn.c_attn.weight": rng.choice(w["h.0.attn.c_attn.weight"].size, 24, replace=False),
        "wte.weight": np.concatenate([tokens[0, :3] * cfg["n_embd"] + 5, rng.choice(w["wte.weight"].size, 13, replace=False)]),
        "wpe.weight": rng.choice(SEQ * cfg["n_embd"], 12, replace=False),
    }
    for name, idx in grads.items():
        out[f"grad_index.{name}"] = np.asarray(idx, np.int32)
        out[f"grad.{name}"] = fd_grad(w, cfg, tokens, name, idx).astype(np.float32)
    # Greedy continuation of a 4-token prompt, one full forward per new token.
    seq = list(tokens[1, :4])
    for _ in range(8):
        seq.append(int(forward(w, cfg, np.array([seq]))[1][0, -1].argmax()))
    out["greedy_prompt"] = np.array(seq[:4], np.int32)
    out["greedy_continuation"] = np.array(seq[4:], np.int32)
    out.update(attention_reference(w, cfg, tokens, hooks))
    path = os.path.join(d, "reference.safetensors")
    st_numpy.save(path, out, {"generator": "scripts/reference_gpt2.py", "seed": str(SEED)})
    print(f"wrote {path}: loss {losses.mean():.6f}, {len(hooks)} hooks")


if __name__ == "__main__":
    main()
