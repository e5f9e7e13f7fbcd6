#!/usr/bin/env bash
# The Python environment of the benchmarks' anchors (`make bench`; not the demo, not the
# tests): llama-cpp-python, the anchor of the GGUF rows, and the `openai` client, the
# anchor of the HTTP benchmark; onnxruntime with numpy,
# tokenizers and pillow, the anchor of the ONNX benchmarks (bench/onnx_python.py; the
# versions are those the fixture references were recorded and checked with); PySceneDetect
# (its `scenedetect` command line, with OpenCV), the anchor of the shot benchmarks. Into
# .wolf/venv.
#
# llama-cpp-python builds llama.cpp from source (about 4 minutes on two idle cores, 13 on
# busy ones): its
# wheel is built once per machine into a cache outside the checkout
# ($WOLF_WHEEL_CACHE, default ~/.cache/wolf/wheels) and reused by every clone.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.wolf/venv"
cache="${WOLF_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wolf/wheels}"
llama_version=0.3.36
openai_version=3.57.0
onnx_anchor="onnxruntime==1.32.0 numpy==2.4.6 tokenizers==0.23.3 pillow==13.0.0"
# The classic metrics' anchor (bench/classic_python.py; it also needs Java).
metrics_anchor="pycocoevalcap==1.2 pycocotools==2.0.11"
# The shot detection anchor (bench/src/shots.rs): PySceneDetect's command line.
shots_anchor="scenedetect==0.7.2 opencv-python==5.1.0.95"
want="llama-cpp-python==$llama_version openai==$openai_version $onnx_anchor $metrics_anchor $shots_anchor"
# Built for AVX2 machines, not with -march=native: on a virtual machine whose CPU reports
# AMX, a native build segfaults at its first decode (a general protection fault in
# libggml-cpu, seen on an Intel Xeon with AMX_INT8). The wheel's folder and the venv's
# marker carry the flags, so that a wheel or venv built otherwise is never reused (and
# pip's own cache, which keys a built wheel by its source alone, is not read).
llama_cmake="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
marker="$want $llama_cmake"

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if [ "$(cat "$venv/.wolf-requirements" 2>/dev/null)" = "$marker" ]; then
  exit 0
fi
# A llama-cpp-python of the same version built otherwise would count as installed.
"$venv/bin/pip" uninstall --quiet --disable-pip-version-check -y llama-cpp-python >/dev/null 2>&1 || true
cache="$cache/llama-avx2"
mkdir -p "$cache"
if ! ls "$cache"/llama_cpp_python-"$llama_version"-*.whl >/dev/null 2>&1; then
  echo "setup: building llama-cpp-python $llama_version (AVX2), once (about 13 minutes)"
  CMAKE_ARGS="$llama_cmake" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$venv/bin/pip" wheel --quiet --no-cache-dir \
    --disable-pip-version-check --no-deps "llama-cpp-python==$llama_version" -w "$cache"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check --find-links "$cache" $want
echo "$marker" > "$venv/.wolf-requirements"
