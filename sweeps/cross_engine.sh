#!/usr/bin/env bash
# The cross-engine check (docs/verl.md): the curriculum testbed's random vs SEC x seeds 0-2 on TRL and on
# verl's own trainer loop on the CPU, the same settings (conf/experiment/cross_engine.yaml, profile
# testbed_quick), two runs at a time; then per engine the wasted share and per-level pass@1, SEC minus
# random paired by seed on each engine, and verl minus TRL paired by seed (95% intervals) into
# report/cross_engine/cross_engine.md. Interrupted? Run it again: finished runs are skipped.
#   bash sweeps/cross_engine.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
SWEEP="${SWEEP:-multirun/cross_engine}"
PROFILE="${PROFILE:-testbed_quick}"
# the seeds on the command line: the quick profile pins make sweep's seed 0 in its sweep params
SEEDS="${SEEDS:-0,1,2}"
"$PY" -m sec.launch -m experiment=cross_engine profile="$PROFILE" seed="$SEEDS" \
    hydra/launcher=joblib hydra.launcher.n_jobs="${JOBS:-2}" "hydra.sweep.dir=${SWEEP}_trl" "$@"
"$PY" -m sec.launch -m experiment=cross_engine profile="$PROFILE" seed="$SEEDS" backend=verl backend.device=cpu \
    hydra/launcher=joblib hydra.launcher.n_jobs="${JOBS:-2}" "hydra.sweep.dir=${SWEEP}_verl" "$@"
"$PY" -m analysis.cross_engine "${SWEEP}_trl" "${SWEEP}_verl" --out "${REPORT:-report/cross_engine}"
