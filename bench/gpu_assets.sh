#!/usr/bin/env bash
# Prepares .gpu/ HERE (a machine with the project's environment and pip access) for bench/gpu_check.sh on a GPU
# machine, which has no internet and takes at most 64 MiB with the working tree:
#   .gpu/minilm/   the packaged MiniLM (esci.encoder.packaged_minilm()) as fp16 safetensors (about 45 MB) with its
#                  config (dtype float32: it loads, and trains, in fp32) and tokenizer files
#   .gpu/wheels/   wheels for CPython 3.12 of what the GPU image lacks (iterative-stratification, pinned as in
#                  requirements.txt)
# Usage: bash bench/gpu_assets.sh        (then name ".gpu" in the device call's carry; see bench/gpu_check.sh)
# Environment: PYTHON (default python).
case "${1:-}" in -h|--help) sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0;; esac
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
DEST=.gpu
MAX_MB=55
tmp=$(mktemp -d)/gpu
trap 'rm -rf "$(dirname "$tmp")"' EXIT
mkdir -p "$tmp/wheels"

PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} $PYTHON - "$tmp/minilm" <<'EOF'
import json, sys
from pathlib import Path
import torch
from transformers import AutoModel, AutoTokenizer
from esci.encoder import load_encoder, packaged_minilm

src, dest = packaged_minilm(), Path(sys.argv[1])
model = AutoModel.from_pretrained(str(src), use_safetensors=True)
model.half().save_pretrained(dest, safe_serialization=True)
AutoTokenizer.from_pretrained(str(src)).save_pretrained(dest)
# fp16 on disk only: transformers 5 loads a checkpoint in its config's dtype, so say float32 there
cfg = json.loads((dest / "config.json").read_text())
cfg.update({k: "float32" for k in ("dtype", "torch_dtype") if k in cfg} or {"dtype": "float32"})
(dest / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
enc = load_encoder(str(dest))
assert enc.dtype == torch.float32, enc.dtype
ref = load_encoder("")
err = max((a.float() - b).abs().max().item() for a, b in zip(enc.state_dict().values(), ref.state_dict().values()))
print(f"{dest}: MiniLM from {src}, fp16 on disk, loads as {enc.dtype}, largest weight change {err:.2e}")
EOF

# the pinned version of each wheel the GPU image lacks (pure Python; its needs numpy, scipy, scikit-learn are there)
for pkg in iterative-stratification; do
  spec=$(grep -i "^$pkg==" requirements.txt) || { echo "$pkg: not pinned in requirements.txt" >&2; exit 1; }
  $PYTHON -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$tmp/wheels" "$spec"
done

mb=$(du -sm "$tmp" | cut -f1)
[ "$mb" -le "$MAX_MB" ] || { echo "$DEST would be $mb MB, over $MAX_MB MB" >&2; exit 1; }
rm -rf "$DEST"
cp -r "$tmp" "$DEST"
du -ab "$DEST" | sort -k2
echo "$DEST: $(du -sh "$DEST" | cut -f1) ready; carry it: run(command=..., carry=[\".gpu\"]) (see bench/gpu_check.sh)"
