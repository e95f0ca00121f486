#!/usr/bin/env bash
# The curriculum testbed, end to end on this machine (docs/testbed.md): task=arith_bare with the
# project's own ~1M-parameter model (built once on first use, a few minutes), curricula random /
# ordered / SEC x seeds 0-4 (15 runs, two at a time), then the report: per curriculum mean ± std and
# each curriculum minus random paired by seed (95% intervals) for ID / OOD pass@1 (best checkpoint and
# last), the wasted share, rollouts per signal group and the slope of the sampled level; Figure 3;
# per-level pass@1 over training. Settings are pre-registered in conf/experiment/testbed.yaml,
# conf/profile/testbed.yaml and conf/task_model/arith_bare_testbed_lm.yaml.
# Interrupted? Run it again: finished runs are skipped, the others resume from their checkpoint.
# Extra arguments go to sec.launch, e.g. seed=100,101 for pilots.
#   bash sweeps/testbed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
SWEEP="${SWEEP:-multirun/testbed}"
"$PY" -m sec.launch -m experiment=testbed profile="${PROFILE:-testbed}" \
    hydra/launcher=joblib hydra.launcher.n_jobs="${JOBS:-2}" "hydra.sweep.dir=$SWEEP" "$@"
"$PY" -m analysis.report "$SWEEP" --out "${REPORT:-report/testbed}" --levels --window 10 --eval-window 1 \
    --figure3-curricula random,ordered,sec
"$PY" -m analysis.summary "$SWEEP"
