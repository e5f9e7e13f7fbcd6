#!/usr/bin/env bash
# The fixture fuser's data and measurement runs (tools/train_fuser.py; tools/README.md).
# Run from the checkout root (the configs name fixture models by relative paths). Every
# run uses its own database and folders under $WORK, never .wolf/.
#
#   tools/fuser_data.sh world SEED COUNT        render world SEED, register it as fuser-SEED
#   tools/fuser_data.sh record PASS SEED [M1]   caption fuser-SEED with the LLM stages sent to
#                                               tools/record_prompts.py; join the replies to the
#                                               references: $WORK/examples-PASS-SEED.jsonl.
#                                               Without M1 the recorder answers both stages
#                                               (summary examples); with M1 (an exported fuser
#                                               folder) M1 writes the summaries and the recorder
#                                               answers the fusion (fusion examples).
#   tools/fuser_data.sh measure SEED FUSER [NAME] caption fuser-SEED with FUSER for both LLM
#                                               stages (guard $GUARD), then score $METRICS;
#                                               $WORK/report-measure-NAME-SEED.json
#
# Environment: WOLF (default target/release/wolf), WORK (default /tmp/fuser), PY (python3
# for the recorder), GUARD (default off), TAG (default empty: appended to the pass in the
# record run's name and files, `record 2 SEED M1` with TAG=c writes run pass2c-SEED and
# $WORK/examples-2c-SEED.jsonl, so a second pass 2 keeps the first one's files), METRICS
# (default embed_sim,classic: measure's `wolf score --metrics`; truth needs the world's
# boxes, i.e. a dataset added with --annotations). Training world seeds: 1001 and up; measurement
# worlds: 1101 and up (never 1-100: the demo's and the other fixtures' worlds).
set -euo pipefail
WOLF=${WOLF:-target/release/wolf}
WORK=${WORK:-/tmp/fuser}
PY=${PY:-python3}
GUARD=${GUARD:-off}
TAG=${TAG:-}
METRICS=${METRICS:-embed_sim,classic}
DB="$WORK/wolf.db"
mkdir -p "$WORK"
wolf() { nice -n 19 "$WOLF" --db "$DB" --no-progress "$@"; }

config() {  # config FILE SUMMARY_ENTRY FUSION_ENTRY EXTRA_MODELS_TOML
  cat > "$1" <<EOF
# Written by tools/fuser_data.sh: the demo's settings (examples/demo.toml) with the
# LLM stages sent to \`$2\` (summary) and \`$3\` (fusion).
[sampling]
fps = 2.0
min_frames = 4
max_frames = 8
format = "jpeg"
jpeg_quality = 90

[models.frame-captioner]
backend = "onnx"
path = "fixtures/models/frame-captioner"
threads = 1
batch = 8

[models.storyboard-captioner]
backend = "onnx"
path = "fixtures/models/storyboard-captioner"
threads = 1
batch = 8

[models.minilm]
backend = "onnx"
threads = 1
batch = 32
$4
[wolf]
image_models = ["frame-captioner"]
video_models = ["storyboard-captioner"]
llm = "$3"
summary_llm = "$2"
fusion_llm = "$3"
guard = "$GUARD"
cascade = true
motion = "captions"
motion_llm = false
llm_max_tokens = 96
caption_max_tokens = 64

[score]
embedder = "minilm"
EOF
}

recorder_toml() {  # recorder_toml PORT
  printf '\n[models.recorder]\nbackend = "openai"\nbase_url = "http://127.0.0.1:%s/v1"\nmodel = "prompt-recorder"\nmax_concurrency = 4\ntimeout_s = 60.0\nmax_retries = 0\n' "$1"
}

onnx_toml() {  # onnx_toml NAME FOLDER
  printf '\n[models.%s]\nbackend = "onnx"\npath = "%s"\nthreads = 1\n' "$1" "$(realpath "$2")"
}

cmd=${1:?usage: fuser_data.sh world|record|measure ...}
shift
case "$cmd" in
world)
  seed=${1:?SEED}; count=${2:?COUNT}
  if [ "$seed" -le 100 ]; then echo "seed $seed: 1-100 are not for the fuser" >&2; exit 2; fi
  dir="$WORK/world-$seed"
  [ -f "$dir/annotations.json" ] || wolf synth --out "$dir" --count "$count" --seed "$seed" --threads 1
  wolf dataset add "fuser-$seed" "$dir" --annotations "$dir/annotations.json"
  ;;
record)
  pass=${1:?PASS}; seed=${2:?SEED}; m1=${3:-}
  log="$WORK/requests.jsonl"
  portfile="$WORK/recorder.port"
  rm -f "$portfile"
  nice -n 19 "$PY" tools/record_prompts.py serve --port 0 --port-file "$portfile" --log "$log" --quiet &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  for _ in $(seq 50); do [ -s "$portfile" ] && break; sleep 0.1; done
  port=$(cat "$portfile")
  conf="$WORK/pass$pass$TAG-$seed.toml"
  if [ -n "$m1" ]; then
    config "$conf" fuser-m1 recorder "$(recorder_toml "$port")$(onnx_toml fuser-m1 "$m1")"
  else
    config "$conf" recorder recorder "$(recorder_toml "$port")"
  fi
  run="pass$pass$TAG-$seed"
  wolf caption --dataset "fuser-$seed" --config "$conf" --run "$run" || echo "caption exited $? (some items failed)" >&2
  wolf export --run "$run" > "$WORK/export-$run.jsonl"
  tasks=summary; [ -n "$m1" ] && tasks=fusion
  "$PY" tools/record_prompts.py join --log "$log" --export "$WORK/export-$run.jsonl" \
    --world "$WORK/world-$seed" --seed "$seed" --tasks $tasks --out "$WORK/examples-$pass$TAG-$seed.jsonl"
  ;;
measure)
  seed=${1:?SEED}; fuser=${2:?FUSER}; name=${3:-$(basename "$fuser")}
  if [ "$seed" -lt 1101 ]; then echo "measure on worlds 1101 and up" >&2; exit 2; fi
  conf="$WORK/measure-$name-$seed.toml"
  config "$conf" fuser fuser "$(onnx_toml fuser "$fuser")"
  run="measure-$name-$seed"
  wolf caption --dataset "fuser-$seed" --config "$conf" --run "$run" || echo "caption exited $? (some items failed)" >&2
  wolf export --run "$run" > "$WORK/export-$run.jsonl"
  wolf score --run "$run" --config "$conf" --metrics "$METRICS"
  wolf report --dataset "fuser-$seed" --format json > "$WORK/report-$run.json"
  ;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac
