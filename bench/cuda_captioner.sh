#!/usr/bin/env bash
# The frame captioner on CUDA against CPU, with bench/onnx_python.py (greedy, merged
# decoder), at batch 1 and 8: prints images/s for each and checks that CUDA writes the
# texts recorded in fixtures/models/frame-captioner/reference_outputs.json.
# For a GPU machine with no network; run from the repository root:
#   bench/cuda_captioner.sh WHEELS [SECONDS_PER_RUN=10] [CPU_THREADS=nproc]
# WHEELS: a folder of wheels for that machine's python3 (its version, x86_64), made where
# the package registry is reachable, for example:
#   pip download --only-binary :all: --python-version 3.11 --platform manylinux_2_28_x86_64 \
#     -d WHEELS 'onnxruntime-gpu[cuda,cudnn]==1.31.1' numpy==2.4.6 tokenizers==0.23.3 pillow==13.0.0
# ([cuda,cudnn] brings the CUDA 13 runtime wheels: nvidia-cuda-runtime, -cublas, -cufft,
# -curand, -cuda-nvrtc, -nvjitlink, and nvidia-cudnn-cu13 9; over 1 GB in all.)
# Everything installs into a temporary folder, removed at the end.
set -euo pipefail
wheels=${1:?usage: bench/cuda_captioner.sh WHEELS [SECONDS_PER_RUN] [CPU_THREADS]}
seconds=${2:-10}
threads=${3:-$(nproc)}
py=${PYTHON:-python3}
model=fixtures/models/frame-captioner
[ -f "$model/reference_outputs.json" ] || { echo "run from the repository root" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" -m pip install --quiet --disable-pip-version-check --no-index --find-links "$wheels" \
  --target "$tmp/site" 'onnxruntime-gpu[cuda,cudnn]==1.31.1' numpy tokenizers pillow
export PYTHONPATH="$tmp/site${PYTHONPATH:+:$PYTHONPATH}"
for lib in "$tmp"/site/nvidia/*/lib; do LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; done
export LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || true
"$py" -c 'import onnxruntime as o; print("onnxruntime", o.__version__, o.get_available_providers())'
images=()
for k in 0 1 2 3 0 1 2 3; do images+=("fixtures/inputs/frame_$k.png"); done
for provider in cpu cuda; do
  for batch in 1 8; do
    t=$threads; [ "$provider" = cuda ] && t=1
    "$py" bench/onnx_python.py captioner --model "$model" --images "${images[@]}" --batch "$batch" \
      --threads "$t" --seconds "$seconds" --decoder merged --provider "$provider" > "$tmp/out.json"
    "$py" - "$tmp/out.json" "$model/reference_outputs.json" "$provider" "$batch" "$t" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
want = json.load(open(sys.argv[2]))["transformers"]["batch_4"]["texts"] * 2
same = "texts equal the references" if d["texts"] == want else "TEXTS DIFFER from the references"
print(f"{sys.argv[3]:4} batch {sys.argv[4]}: {d['images_per_s']:8.1f} images/s "
      f"({d['images']} images in {d['seconds']:.1f} s, {d['provider']}, {sys.argv[5]} CPU threads; {same})")
EOF
  done
done
