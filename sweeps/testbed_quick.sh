#!/usr/bin/env bash
# `make sweep`: a quick look at the curriculum testbed (docs/testbed.md) on this machine: the project's
# own ~1M-parameter model on bare arithmetic (built once on first use, a few minutes), curricula
# random / ordered / SEC with one seed, 150 GRPO steps each, two runs at a time; then a summary of what
# the curricula did (the sampled level per quarter of training, the wasted share of rollout groups,
# ID / OOD pass@1) and the report with Figure 3 in report/testbed_quick/. The full benchmark, with 5
# seeds and paired intervals, is `bash sweeps/testbed.sh`. Extra arguments go to sec.launch.
# BACKEND=verl runs the same sweep through verl's own trainer loop on the CPU (backend=verl
# backend.device=cpu, docs/verl.md) into multirun/testbed_quick_verl and report/testbed_quick_verl.
# EXPERIMENT / PROFILE / NAME / FIGURE3 (its curricula) run another sweep the same way
# (sweeps/testbed_carry_quick.sh, sweeps/testbed_carry.sh).
#   bash sweeps/testbed_quick.sh
#   BACKEND=verl bash sweeps/testbed_quick.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
BACKEND="${BACKEND:-trl}"
case "$BACKEND" in
  trl) ENGINE=(); SUFFIX="" ;;
  verl) ENGINE=(backend=verl backend.device=cpu); SUFFIX="_verl" ;;
  *) echo "BACKEND=$BACKEND: expected trl or verl" >&2; exit 2 ;;
esac
NAME="${NAME:-testbed_quick}"
SWEEP="${SWEEP:-multirun/$NAME$SUFFIX}"
REPORT="${REPORT:-report/$NAME$SUFFIX}"
"$PY" -m sec.launch -m experiment="${EXPERIMENT:-testbed}" profile="${PROFILE:-testbed_quick}" "${ENGINE[@]}" \
    hydra/launcher=joblib hydra.launcher.n_jobs="${JOBS:-2}" "hydra.sweep.dir=$SWEEP" "$@"
"$PY" -m analysis.report "$SWEEP" --out "$REPORT" --levels --window 10 --eval-window 1 \
    --figure3-curricula "${FIGURE3:-random,ordered,sec}" > /dev/null
"$PY" -m analysis.summary "$SWEEP"
echo "Figure 3 and the tables: $REPORT/index.md"
