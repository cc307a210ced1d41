"""Checks that SAELens 6.x would load a folder with SAE.load_from_disk, by the rules read from its source
(no SAELens install here: the rules are encoded below). numpy only.

Usage: python3 test/saelens_config_check.py FOLDER...   Prints one JSON line per folder:
{"folder", "ok", "errors": [...], "layout": "v6" | "pre-6", "architecture", "hook_name"}.

Rules (sae_lens 6.18: loading/pretrained_sae_loaders.py, saes/sae.py, saes/{standard,jumprelu,topk}_sae.py):
1. handle_config_defaulting: the layout is 6.x when cfg["sae_lens_version"] or cfg["metadata"]["sae_lens_version"]
   parses as a version >= 6.0.0-rc.0; otherwise handle_pre_6_0_config renames hook_point -> hook_name,
   hook_point_head_index -> hook_head_index, activation_fn_str -> activation_fn, sets defaults (architecture
   "standard", apply_b_dec_to_input True, device "cpu", reshape_activations "hook_z" for hook_z hooks else "none"),
   maps a bool normalize_activations (True -> expected_average_only_in) and None -> "none", turns
   activation_fn "topk" with activation_fn_kwargs.k into architecture topk, and builds metadata from the
   top-level keys in LLM_METADATA_KEYS (a "metadata" block of a pre-6 cfg is dropped).
2. SAEConfig.from_dict: the architecture must be registered; the dataclass takes d_in, d_sae (required),
   dtype, device, apply_b_dec_to_input, normalize_activations, reshape_activations (+ k,
   rescale_acts_by_decoder_norm for topk); __post_init__ raises unless normalize_activations is one of
   none, expected_average_only_in, constant_norm_rescale, layer_norm. dtype must be a DTYPE_MAP key.
3. SAE.__init__: reshape_activations "hook_z" requires metadata.hook_name ending in "_z" (when set).
4. load_state_dict is strict: sae_weights.safetensors holds exactly W_enc [d_in, d_sae], b_enc [d_sae],
   W_dec [d_sae, d_in], b_dec [d_in] (+ threshold [d_sae] for jumprelu); read_sae_components_from_disk casts
   to cfg dtype. A "scaling_factor" tensor that is not all ones needs finetuning_scaling_factor True (and 6.x
   then has no parameter for it).
Besides SAELens' own rules, for a folder written by sae-train: metadata.hook_name and model_name are set (the
hook to attach to); sae_lens_training_version is present (SAEMetadata fills a missing one with SAELens' own version) and
names sae-train or a SAELens version; metadata.model_from_pretrained_kwargs is a mapping (sae_lens/evals.py runs
HookedTransformer.from_pretrained_no_processing(model_name, **it)); dataset_path is not an activation cache.
"""
import json
import os
import re
import struct
import sys

import numpy as np

# register_sae_class in sae_lens/__init__.py (inference classes; batchtopk and matryoshka are training-only)
REGISTERED = {"standard", "gated", "topk", "jumprelu", "transcoder", "skip_transcoder", "jumprelu_transcoder"}
NORMS = {"none", "expected_average_only_in", "constant_norm_rescale", "layer_norm"}
DTYPES = {"float32", "float64", "float16", "bfloat16", "torch.float32", "torch.float64", "torch.float16", "torch.bfloat16"}
LLM_METADATA_KEYS = {"model_name", "hook_name", "model_class_name", "hook_head_index", "model_from_pretrained_kwargs",
                     "prepend_bos", "exclude_special_tokens", "neuronpedia_id", "context_size", "seqpos_slice",
                     "dataset_path", "sae_lens_version", "sae_lens_training_version", "hook_name_out", "hook_head_index_out"}
FIELDS = {"d_in", "d_sae", "dtype", "device", "apply_b_dec_to_input", "normalize_activations", "reshape_activations", "metadata"}
TOPK_FIELDS = FIELDS | {"k", "rescale_acts_by_decoder_norm"}


def version_major(v):
    m = re.match(r"^v?(\d+)\.(\d+)\.(\d+)", str(v or ""))
    return int(m.group(1)) if m else None


def pre6(cfg):
    ren = {"hook_point": "hook_name", "hook_point_head_index": "hook_head_index", "activation_fn_str": "activation_fn"}
    c = {ren.get(k, k): v for k, v in cfg.items()}
    c.setdefault("prepend_bos", True)
    c.setdefault("apply_b_dec_to_input", True)
    c.setdefault("finetuning_scaling_factor", False)
    c.setdefault("activation_fn", "relu")
    c.setdefault("architecture", "standard")
    c.setdefault("reshape_activations", "hook_z" if "hook_z" in c.get("hook_name", "") else "none")
    if c.get("activation_fn") == "topk" and (c.get("activation_fn_kwargs") or {}).get("k") is not None:
        c["architecture"] = "topk"
        c["k"] = c["activation_fn_kwargs"]["k"]
    if isinstance(c.get("normalize_activations"), bool):
        c["normalize_activations"] = "expected_average_only_in" if c["normalize_activations"] else "none"
    if c.get("normalize_activations") is None:
        c["normalize_activations"] = "none"
    c.setdefault("device", "cpu")
    fields = TOPK_FIELDS if c["architecture"] == "topk" else FIELDS
    out = {k: v for k, v in c.items() if k in fields}
    out["metadata"] = {k: v for k, v in c.items() if k in LLM_METADATA_KEYS}
    out["architecture"] = c["architecture"]
    out["finetuning_scaling_factor"] = c["finetuning_scaling_factor"]
    return out


def read_header(path):
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
        data = fh.read()
    # safetensors' own loader (Metadata::validate) refuses offsets that are not contiguous from 0 and covering the data.
    at = 0
    for name, info in sorted(((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: tuple(kv[1]["data_offsets"])):
        b, e = info["data_offsets"]
        if b != at or e < b:
            raise ValueError(f"{path}: tensor {name!r} has data_offsets {[b, e]}, expected to start at {at} (safetensors raises InvalidOffset)")
        at = e
    if at != len(data):
        raise ValueError(f"{path}: the tensors cover {at} of {len(data)} data bytes (safetensors raises MetadataIncompleteBuffer)")
    return header, data


def check(folder):
    errors = []
    cfg = json.load(open(os.path.join(folder, "cfg.json")))
    meta = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
    major = version_major(cfg.get("sae_lens_version") or meta.get("sae_lens_version"))
    layout = "v6" if major is not None and major >= 6 else "pre-6"
    if layout == "v6":
        c = dict(cfg)
        c.setdefault("device", "cpu")
        c.setdefault("metadata", {})
        c.setdefault("finetuning_scaling_factor", False)
    else:
        c = pre6(cfg)
    arch = c.get("architecture")
    if arch not in REGISTERED:
        errors.append(f"architecture {arch!r} is not registered")
    for k in ("d_in", "d_sae"):
        if not isinstance(c.get(k), int) or isinstance(c.get(k), bool) or c[k] <= 0:
            errors.append(f"{k} must be a positive int, got {c.get(k)!r}")
    if c.get("dtype", "float32") not in DTYPES:
        errors.append(f"dtype {c.get('dtype')!r} not in DTYPE_MAP")
    if c.get("normalize_activations", "none") not in NORMS:
        errors.append(f"normalize_activations {c.get('normalize_activations')!r}: SAEConfig.__post_init__ raises (allowed: {sorted(NORMS)})")
    if c.get("reshape_activations", "none") not in ("none", "hook_z"):
        errors.append(f"reshape_activations {c.get('reshape_activations')!r}")
    if not isinstance(c.get("apply_b_dec_to_input", True), bool):
        errors.append("apply_b_dec_to_input must be a bool")
    md = c.get("metadata", {})
    if c.get("reshape_activations") == "hook_z" and md.get("hook_name") and not md["hook_name"].endswith("_z"):
        errors.append("reshape_activations hook_z on a hook that is not hook_z")
    if arch == "topk" and (not isinstance(c.get("k", 100), int) or c.get("k", 100) <= 0):
        errors.append(f"topk k must be a positive int, got {c.get('k')!r}")
    for k in ("hook_name", "model_name"):
        if not isinstance(md.get(k), str) or not md.get(k):
            errors.append(f"metadata.{k} missing (after SAELens' {layout} config handling)")
    if "sae_lens_training_version" not in md:
        errors.append("sae_lens_training_version missing: SAEMetadata fills in SAELens' own version")
    tv = md.get("sae_lens_training_version")
    if tv is not None and "sae-train" not in str(tv) and not str(tv)[:1].isdigit():
        errors.append(f"sae_lens_training_version {tv!r} is neither sae-train's nor a SAELens version")
    kw = md.get("model_from_pretrained_kwargs")
    if not isinstance(kw, dict):
        errors.append(f"metadata.model_from_pretrained_kwargs is {kw!r}: SAELens' evals call from_pretrained_no_processing(**it), which needs a mapping")
    dp = md.get("dataset_path")
    if isinstance(dp, str) and (os.path.exists(os.path.join(dp, "manifest.json"))):
        errors.append(f"dataset_path {dp!r} is an activation cache, not a dataset")

    d_in, d_sae = c.get("d_in"), c.get("d_sae")
    want = {"W_enc": [d_in, d_sae], "b_enc": [d_sae], "W_dec": [d_sae, d_in], "b_dec": [d_in]}
    if arch == "jumprelu":
        want["threshold"] = [d_sae]
    header, data = read_header(os.path.join(folder, "sae_weights.safetensors"))
    names = {k for k in header if k != "__metadata__"}
    scale = None
    for alias in ("scaling_factor",):
        if alias in names:
            names.discard(alias)
            info = header[alias]
            b, e = info["data_offsets"]
            scale = np.frombuffer(data[b:e], dtype="<f4")
    if scale is not None and not np.allclose(scale, 1) and not c.get("finetuning_scaling_factor"):
        errors.append("scaling_factor not all ones but finetuning_scaling_factor is False")
    if names != set(want):
        errors.append(f"state dict keys {sorted(names)} != {sorted(want)} (load_state_dict is strict)")
    for k, shape in want.items():
        if k in header and header[k]["shape"] != shape:
            errors.append(f"{k} shape {header[k]['shape']} != {shape}")
        if k in header and header[k]["dtype"] not in ("F32", "F16", "BF16", "F64"):
            errors.append(f"{k} dtype {header[k]['dtype']}")
    return {"folder": folder, "ok": not errors, "errors": errors, "layout": layout, "architecture": arch, "hook_name": md.get("hook_name")}


if __name__ == "__main__":
    for f in sys.argv[1:]:
        print(json.dumps(check(f)))
