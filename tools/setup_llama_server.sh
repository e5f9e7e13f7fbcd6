#!/usr/bin/env bash
# llama.cpp's own OpenAI-compatible server, `llama-server`: the real third-party server
# of the `openai` backend's tests, and the bench's anchor for continuous batching. Into
# .wolf/bin/llama-server.
#
# Built with cmake from the llama.cpp that llama-cpp-python's source package vendors
# (pinned version and checksum, fetched by pip): the crate `llama-cpp-sys-2` vendors
# llama.cpp without the server's sources. Only the `llama-server` target is built (about
# 5.5 minutes on two idle cores). The binary is built once per machine into a cache
# outside the checkout ($WOLF_BUILD_CACHE, default ~/.cache/wolf/build) and copied from
# there by every later clone.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=0.3.36
sha256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
# For AVX2 machines, not -march=native (see setup_venv.sh: a native build segfaults on
# virtual machines whose CPU reports AMX). No web UI (it would be downloaded), no
# OpenSSL, one static binary.
flags=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF
       -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
       -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF
       -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF
       -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF)
marker="llama-cpp-python $version ${flags[*]}"
cache="${WOLF_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wolf/build}/llama-server-$(echo "$marker" | sha256sum | cut -c1-16)"
bin="$root/.wolf/bin"

if [ "$(cat "$bin/llama-server.build" 2>/dev/null)" = "$marker" ] && [ -x "$bin/llama-server" ]; then
  exit 0
fi
if [ ! -x "$cache/llama-server" ]; then
  echo "setup: building llama-server (llama.cpp of llama-cpp-python $version), once (about 5 minutes)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  python3 -m venv "$work/venv"
  # pip prepares the source package's metadata, which needs its build backend.
  "$work/venv/bin/pip" download --quiet --disable-pip-version-check --no-deps \
    --no-binary :all: "llama-cpp-python==$version" -d "$work"
  archive="$work/llama_cpp_python-$version.tar.gz"
  echo "$sha256  $archive" | sha256sum --check --quiet
  tar xzf "$archive" -C "$work" "llama_cpp_python-$version/vendor/llama.cpp"
  src="$work/llama_cpp_python-$version/vendor/llama.cpp"
  cmake -S "$src" -B "$work/build" "${flags[@]}" >"$work/cmake.log" 2>&1 \
    || { cat "$work/cmake.log" >&2; exit 1; }
  cmake --build "$work/build" --target llama-server -j "$(nproc)" >"$work/build.log" 2>&1 \
    || { tail -50 "$work/build.log" >&2; exit 1; }
  mkdir -p "$cache"
  cp "$work/build/bin/llama-server" "$cache/llama-server.tmp"
  mv "$cache/llama-server.tmp" "$cache/llama-server"
fi
mkdir -p "$bin"
cp "$cache/llama-server" "$bin/llama-server.tmp"
mv "$bin/llama-server.tmp" "$bin/llama-server"
echo "$marker" > "$bin/llama-server.build"
