#!/usr/bin/env bash
# `make recaption-demo`: VILA²'s loop in the closed world (issue 23; tools/vila_loop.py
# says how). Renders the worlds, trains the round-0 captioner on weak captions, then runs
# three arms of `wolf recaption loop` over the same data and seeds, each for captioners
# 0..3 with the saturation stop, and appends their held-out table to bench/results.md.
# Everything lives in $WORK (default .wolf/recaption-demo); run again, it goes on where
# it stopped (the worlds, round 0 and finished rounds are kept). Needs the dev
# environment (tools/setup_devenv.sh, installed here when missing); about 20 minutes on
# two cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work="${WORK:-$root/.wolf/recaption-demo}"
py="$root/.wolf/devenv/bin/python"
wolf="$root/target/release/wolf"
db="$work/wolf.db"
tools/setup_devenv.sh
mkdir -p "$work/arms"
"$py" tools/vila_loop.py world --work "$work"
"$py" tools/vila_loop.py round0 --work "$work"
if ! "$wolf" --no-progress --db "$db" dataset list 2>/dev/null | grep -q closed-heldout; then
  "$wolf" --no-progress --db "$db" dataset add closed-heldout "$work/world-heldout" \
    --annotations "$work/world-heldout/annotations.json"
fi

# One arm: NAME TEMPLATE ROUNDS CAPTIONER [SPECIALIST]; the captioner is retrained after
# every round but the last.
arm() {
  local name=$1 template=$2 rounds=$3 captioner=$4 specialist=${5:-}
  local config="$work/$name.toml"
  {
    echo "[models.captioner-round-0]"
    echo "backend = \"onnx\""
    echo "path = \"$work/round0/captioner\""
    echo
    echo "[models.grounding-specialist]"
    echo "backend = \"onnx\""
    echo "path = \"$work/specialist\""
    echo
    echo "[recaption]"
    echo "captioner = \"$captioner\""
    echo "template = \"$template\""
    if [ -n "$specialist" ]; then
      echo "specialists = [\"grounding\"]"
      echo "specialist_captioner = \"$specialist\""
    fi
    echo "seed = 0"
    echo "concurrency = 4"
    echo "train_cmd = \"'$py' '$root/tools/vila_loop.py' train --work '$work' --start '$work/round0/captioner' \\\"\$1\\\"\""
    echo "heldout = \"closed-heldout\""
    echo "min_gain = 0.01"
    echo "rounds = $rounds"
  } > "$config"
  echo "recaption-demo: arm $name"
  "$wolf" --no-progress --db "$db" recaption loop --input "$work/data/shards" \
    --out "$work/arms/$name" --config "$config"
}
arm generalist short_long 4 captioner-round-0
arm specialists short_long 4 captioner-round-0 grounding-specialist
arm original-only original_only 4 captioner-round-0
# The specialist's own held-out score, for reference (one round, no training).
arm specialist-alone recaption_only 1 grounding-specialist
"$py" tools/vila_loop.py table --work "$work" --arms generalist specialists original-only specialist-alone \
  --out bench/results.md
"$wolf" --no-progress --db "$db" leaderboard build --out "$work/site" --no-thumbnails >/dev/null
echo "recaption-demo: the table is at the end of bench/results.md; the rounds' chart is on $work/site/index.html"
