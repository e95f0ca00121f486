#!/usr/bin/env bash
# Compute to target (issue 26, docs/league.md): random, SEC, MoPPS, learnability x seeds 0-4 on
# arith_carry with dynamic sampling on, pass@1 every 10 steps, two runs at a time (joblib); then the
# report (report/league_compute/index.md: the league table and the compute-to-target table: rollouts
# and seconds to the pre-registered targets, each curriculum over random paired by seed with 95%
# intervals, censored runs shown) and the summary.
# Settings: conf/experiment/league_compute.yaml (targets), conf/profile/league_compute.yaml.
# Interrupted? Run it again: finished runs are skipped, the others resume from their checkpoint.
# Extra arguments go to sec.launch, e.g. seed=100 curriculum=random for a pilot.
#   bash sweeps/league_compute.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
SWEEP="${SWEEP:-multirun/league_compute}"
"$PY" -m sec.launch -m experiment=league_compute profile=league_compute \
    hydra/launcher=joblib hydra.launcher.n_jobs="${JOBS:-2}" "hydra.sweep.dir=$SWEEP" "$@"
"$PY" -m analysis.report "$SWEEP" --out "${REPORT:-report/league_compute}" --levels --window 10 \
    --eval-window 1 --figure3-curricula random,sec
"$PY" -m analysis.summary "$SWEEP"
