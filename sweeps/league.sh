#!/usr/bin/env bash
# The league (issue 17, docs/league.md), end to end on this machine: every curriculum (random,
# ordered, SEC, SEC + GRESO, DUMP, MoPPS, E2H Gaussian / cosine, AdaRFT, learnability) x seeds 0-4
# on the curriculum testbed (task=arith_bare, the project's own ~1M-parameter model, built once on
# first use), every run with the same rollout budget, two runs at a time (joblib); then the report
# (report/league/index.md): the league table (ID / OOD pass@1 and each minus random paired by seed
# with 95% intervals, zero-variance share, rollouts per useful group, curriculum overhead per step),
# Figure 3 per curriculum, per-level pass@1 and the curricula's state over training.
# Settings: conf/experiment/league.yaml, conf/profile/league.yaml (the default size) or
# league_full.yaml (PROFILE=league_full: the testbed's full size), the curricula's own configs.
# Interrupted? Run it again: finished runs are skipped, the others resume from their checkpoint.
# Extra arguments go to sec.launch, e.g. seed=100,101 for pilots or curriculum=random,sec.
#   bash sweeps/league.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
PROFILE="${PROFILE:-league}"
SWEEP="${SWEEP:-multirun/league_${PROFILE}}"
"$PY" -m sec.launch -m experiment=league profile="$PROFILE" \
    hydra/launcher=joblib hydra.launcher.n_jobs="${JOBS:-2}" "hydra.sweep.dir=$SWEEP" "$@"
"$PY" -m analysis.report "$SWEEP" --out "${REPORT:-report/league_${PROFILE}}" --levels --window 10 \
    --eval-window 1 --figure3-curricula random,ordered,sec
"$PY" -m analysis.summary "$SWEEP"
