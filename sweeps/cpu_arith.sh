#!/usr/bin/env bash
# The CPU benchmark, end to end on this machine (README "CPU benchmark"): task=arith with the
# embedded SmolLM2-135M, curricula random / ordered / SEC / SEC-Thompson x seeds 0,1,2 (12 runs of
# 40 GRPO steps, two at a time), then the report: Table 1 (best checkpoint, per level too),
# Figure 3 (sampled level vs step, every curriculum), and per run / per curriculum the first and
# last pass@1 and the share of wasted (zero-variance) rollout groups, in report/cpu_arith/.
# Interrupted? Run it again: finished runs are skipped, the others resume from their checkpoint.
# Extra arguments go to sec.launch, e.g. seed=0,1,2,3,4 or curriculum=sec,random.
#   bash sweeps/cpu_arith.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
SWEEP="${SWEEP:-multirun/cpu_arith}"
"$PY" -m sec.launch -m experiment=cpu_arith profile="${PROFILE:-cpu_bench}" \
    hydra/launcher=joblib hydra.launcher.n_jobs="${JOBS:-2}" "hydra.sweep.dir=$SWEEP" "$@"
"$PY" -m analysis.report "$SWEEP" --out "${REPORT:-report/cpu_arith}" --levels --window 5 --eval-window 1 \
    --figure3-curricula random,ordered,sec,sec_thompson
