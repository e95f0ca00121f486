#!/usr/bin/env bash
# The README's local sweep: 2 tasks x 2 curricula on the embedded model, CPU profile, run one
# job after another by Hydra's local launcher. Extra arguments are passed to sec.launch,
# e.g. `bash sweeps/cpu_default.sh seed=1`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PY:-.venv/bin/python}" -m sec.launch -m task=zebra,arc curriculum=sec,random "$@"
