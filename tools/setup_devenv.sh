#!/usr/bin/env bash
# The developer environment of tools/ (torch, transformers 5, tokenizers, onnx,
# onnxruntime), which trains the fixture models and runs `make recaption-demo`; not the
# demo's, not the tests'. Into .wolf/devenv, about 5.7 GB (torch's wheel brings its
# CUDA libraries). The pins are those tools/README.md records the fixtures with.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.wolf/devenv"
want="torch==2.15.0 transformers==5.24.0 tokenizers==0.23.3 pillow==13.0.0 numpy==2.4.6 safetensors==0.8.0 onnx==1.23.2 onnxruntime==1.32.0"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if [ "$(cat "$venv/.wolf-requirements" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "setup: installing the dev environment into $venv (about 5.7 GB)"
"$venv/bin/pip" install --quiet --disable-pip-version-check $want
echo "$want" > "$venv/.wolf-requirements"
