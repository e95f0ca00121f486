#!/usr/bin/env bash
# The README's local sweep: Countdown x {SEC, random, ordered} on the embedded model with the
# `cpu` profile, one job after another (Hydra's local launcher). Countdown's prompts are short
# (~100 tokens), so on 2 cores the sweep takes minutes; the design card's
#   python -m sec.launch -m task=zebra,arc curriculum=sec,random
# runs the same way with ~4x longer prompts (see the README for measured times).
# Extra arguments go to sec.launch, e.g. `bash sweeps/cpu_default.sh seed=1`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PY:-.venv/bin/python}" -m sec.launch -m task=countdown curriculum=sec,random,ordered "$@"
