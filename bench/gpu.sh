#!/usr/bin/env bash
# bench/gpu.sh: the webgpu backend against PyTorch (fp32 and TF32) on one NVIDIA GPU, on a machine with no network.
#
#   bench/gpu.sh pack        here (network, `npm ci` done): builds .gpu-pack/ (~30 MB, git-ignored): the Node binary
#                            (xz), bench/gpu.ts bundled with esbuild, dawn.node (xz), the libvulkan1 .deb and
#                            bench/torch_gpu.py. Nothing else travels: no node_modules.
#   bench/gpu.sh run [--tiny] there, from the repository root: unpacks the Vulkan loader into / (as the device
#                            machine's README says), finds NVIDIA's Vulkan ICD, prints the adapter, runs the webgpu
#                            bench and then PyTorch, one JSON line per case, also into $OUT/gpu-bench.jsonl (or
#                            .gpu-pack/results.jsonl). --tiny: small shapes (a dry run, e.g. on lavapipe, whose
#                            128 MiB buffer limit refuses GPT-2's 147 MiB embedding).
#
# The cases (bench/gpu.ts, bench/torch_gpu.py): one SAE step d_in 768, d_sae 24576, batch 4096, Adam; a sweep of
# 4 such SAEs on one batch; GPT-2-small-shape forward to blocks.8.hook_resid_pre, batch 32 x 128, hook read back.
# With the device tool: run(command="bash bench/gpu.sh run", carry=[".gpu-pack"], timeout_s=540).
set -euo pipefail
cd "$(dirname "$0")/.."
P=.gpu-pack

pack() {
  rm -rf "$P" && mkdir -p "$P/debs"
  npx esbuild bench/gpu.ts --bundle --platform=node --format=esm --target=node20 --outfile="$P/gpu.mjs" --log-level=warning \
    --banner:js="import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);"
  xz -T2 -6 -c node_modules/webgpu/dist/linux-x64/dawn.node > "$P/dawn.node.xz"
  xz -T2 -6 -c "$(command -v node)" > "$P/node.xz"
  cp bench/torch_gpu.py "$P/"
  # The Vulkan loader for amd64 from Debian, whatever this machine is (device README's recipe).
  local o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64-lists'
  mkdir -p /tmp/amd64-lists/partial
  # shellcheck disable=SC2086
  apt-get $o update -qq && (cd "$P/debs" && apt-get $o download libvulkan1 >/dev/null)
  du -sh "$P"; ls -la "$P" "$P/debs"
}

run() {
  local tiny=() out="${OUT:-$P}"
  [ "${1:-}" = --tiny ] && tiny=(--d-sae 256 --batch 128 --sweep 2 --gpt-batch 2 --gpt-ctx 16 --gpt-layers 2 --gpt-vocab 4096 --reps 3 --warmup 1)
  [ -f "$P/gpu.mjs" ] || { echo "bench/gpu.sh: $P/gpu.mjs missing: run 'bench/gpu.sh pack' on a machine with network first" >&2; exit 1; }
  if ! ldconfig -p | grep -q libvulkan.so.1; then
    for f in "$P"/debs/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  if ! ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json >/dev/null 2>&1 && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json VK_ICD_FILENAMES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  fi
  local node=node
  if [ -f "$P/node.xz" ]; then xz -dc "$P/node.xz" > /tmp/gpu-bench-node && chmod +x /tmp/gpu-bench-node && node=/tmp/gpu-bench-node; fi
  mkdir -p "$P/dist/linux-x64"
  [ -f "$P/dist/linux-x64/dawn.node" ] || xz -dc "$P/dawn.node.xz" > "$P/dist/linux-x64/dawn.node"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  echo "date: $(date -u +%FT%TZ); Vulkan ICDs: ${VK_DRIVER_FILES:-$(ls /usr/share/vulkan/icd.d/ /etc/vulkan/icd.d/ 2>/dev/null | tr '\n' ' ')}"
  mkdir -p "$out"
  local res="$out/gpu-bench.jsonl"
  : > "$res"
  echo "== webgpu (tfjs-backend-webgpu on Dawn) =="
  (cd "$P" && timeout 300 "$node" gpu.mjs "${tiny[@]}" 2>&1) | grep -v '^Warning: max' | tee -a "$res" || echo '{"impl":"tfjs-webgpu","error":"failed or timed out, see above"}' | tee -a "$res"
  echo "== PyTorch (CUDA) =="
  if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    PYTHONUNBUFFERED=1 timeout 200 python3 "$P/torch_gpu.py" "${tiny[@]}" 2>&1 | tee -a "$res" || echo '{"impl":"torch","error":"failed or timed out"}' | tee -a "$res"
  else
    echo '{"impl":"torch","error":"no CUDA PyTorch on this machine"}' | tee -a "$res"
  fi
  echo "results: $res"
}

case "${1:-}" in
  pack) pack ;;
  run) shift; run "$@" ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac
