#!/bin/bash
# Eight wolf workers as a Slurm job array, one GPU each, all draining one queue in
# PostgreSQL. The array index does not shard the work (the queue hands out items); it
# only names the worker.
#
# Enqueue the run once, from any machine that reaches the database:
#   export WOLF_DB=postgres://USER:PASSWORD@HOST:5432/DBNAME
#   wolf caption --dataset NAME --config examples/vllm.toml --run my-run --enqueue-only
# then submit (sbatch passes your environment, WOLF_DB included, to the job; arguments
# after the script go to `wolf worker`), and watch:
#   sbatch examples/scaling/slurm-array.sh --run my-run
#   wolf run status my-run
#
# On nodes without GPUs, drop the GPU request with Slurm's own variable (the command
# line overrides the other #SBATCH lines the same way):
#   SBATCH_GRES=none sbatch --cpus-per-task=1 --mem=1G examples/scaling/slurm-array.sh --run my-run
# The tests run it so, as an array of 4, on a one-node cluster (tests/slurm.rs).
#
# Each worker exits when the runs it serves have no pending or running item. On
# scancel, or 120 s before the time limit (--signal), it gets SIGTERM: it stops
# claiming, commits finished videos and returns unfinished ones to the queue. A task
# killed outright loses nothing: its leases expire and another worker requeues them.
#
#SBATCH --job-name=wolf-worker
#SBATCH --array=0-7
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=24:00:00
#SBATCH --signal=TERM@120
#SBATCH --output=wolf-worker-%A_%a.log

set -euo pipefail

: "${WOLF_DB:?export WOLF_DB=postgres://USER:PASSWORD@HOST:5432/DBNAME before sbatch}"
export WOLF_DB
WOLF=${WOLF:-wolf}
# This node's [models] entries (endpoints on this node); they replace the model
# entries of each run's stored config, so name every model the runs use.
MODELS=${WOLF_MODELS:-$HOME/.config/wolf/models.toml}

# Start the node's model server here if it has none, for example:
#   vllm serve Qwen/Qwen2.5-VL-7B-Instruct --port 8000 &
#   until curl -sf http://127.0.0.1:8000/health; do sleep 5; done

srun "$WOLF" worker \
    --config "$MODELS" \
    --concurrency 4 \
    --exit-when-idle \
    --name "$(hostname):${SLURM_ARRAY_TASK_ID}" \
    "$@"
