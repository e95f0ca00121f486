#!/usr/bin/env bash
# The testbed's external check, end to end on this machine (docs/testbed.md): the testbed's comparison
# (task=arith_bare, random vs SEC) on SmolLM2-135M-Instruct after a format warm-up SFT
# (model=smollm2_135m_sft, built once on first use, a few minutes), seeds 0-3 (8 runs, two at a time),
# then the same report as sweeps/testbed.sh. Settings: conf/experiment/testbed_smollm2.yaml,
# conf/profile/testbed_smollm2.yaml, conf/task_model/arith_bare_smollm2_135m_sft.yaml.
# Interrupted? Run it again: finished runs are skipped, the others start again.
#   bash sweeps/testbed_smollm2.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
SWEEP="${SWEEP:-multirun/testbed_smollm2}"
# build the warm-up model once, before the jobs start (they would wait for one builder anyway)
"$PY" -m sec.models.warmup build
"$PY" -m sec.launch -m experiment=testbed_smollm2 profile="${PROFILE:-testbed_smollm2}" \
    hydra/launcher=joblib hydra.launcher.n_jobs="${JOBS:-2}" "hydra.sweep.dir=$SWEEP" "$@"
"$PY" -m analysis.report "$SWEEP" --out "${REPORT:-report/testbed_smollm2}" --levels --window 5 --eval-window 1 \
    --figure3-curricula random,sec
"$PY" -m analysis.summary "$SWEEP"
