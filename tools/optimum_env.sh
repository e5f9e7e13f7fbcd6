#!/usr/bin/env bash
# The environment that runs Optimum's ONNX exporter for tools/train_captioner.py.
#
# optimum-onnx 0.1.0 pins transformers < 4.58, while the dev environment (.wolf/devenv)
# has transformers 5, so the exporter gets a venv of its own that borrows torch and the
# rest from the dev environment through a .pth file and overrides transformers only.
# Usage: [DEVENV=/path/to/devenv] tools/optimum_env.sh [/tmp/optenv]   (then pass
# --optimum-python /tmp/optenv/bin/python); DEVENV defaults to .wolf/devenv.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
env=${1:-/tmp/optenv}
devenv="${DEVENV:-$root/.wolf/devenv}"
py=$("$devenv/bin/python" -c 'import sys; print(sys.base_prefix)')/bin/python3
site=$("$devenv/bin/python" -c 'import site; print(site.getsitepackages()[0])')
[ -x "$env/bin/python" ] || "$py" -m venv "$env"
envsite=$("$env/bin/python" -c 'import site; print(site.getsitepackages()[0])')
echo "$site" > "$envsite/devenv.pth"
"$env/bin/pip" install --quiet --disable-pip-version-check \
  optimum-onnx==0.1.0 optimum==2.1.0 transformers==4.57.6 huggingface_hub==0.36.2 \
  tokenizers==0.22.2 accelerate==1.15.0
"$env/bin/python" -c 'import optimum.exporters.onnx, transformers; print("optimum env ready, transformers", transformers.__version__)'
