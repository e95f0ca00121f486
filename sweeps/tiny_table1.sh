#!/usr/bin/env bash
# Table 1's shape on the tiny profile, end to end on a CPU: Countdown + Zebra x {random, ordered,
# SEC} x 2 seeds (12 jobs of the tiny random model, 12 steps of 4 problems, evaluated every 3
# steps), then the report: Table 1, Figure 3 and the paper side by side in report/tiny_table1/.
# This made the README's figure and table. Extra arguments go to sec.launch, e.g. seed=0,1,2.
#   bash sweeps/tiny_table1.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
SWEEP="${SWEEP:-multirun/tiny_table1}"
"$PY" -m sec.launch -m experiment=table1 profile=tiny task=countdown,zebra seed=0,1 \
    train.steps=12 train.prompts_per_step=4 eval.every=3 train.save_every=0 "hydra.sweep.dir=$SWEEP" "$@"
"$PY" -m analysis.report "$SWEEP" --out "${REPORT:-report/tiny_table1}" --window 3 --eval-window 1 \
    --figure3-curricula random,ordered,sec
