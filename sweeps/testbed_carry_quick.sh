#!/usr/bin/env bash
# `make sweep`: a quick look at the carry regime of the testbed (docs/testbed.md "The carry regime"):
# the project's own ~1M-parameter model pre-trained on three-digit sums (built once on first use,
# ~5 min on one core), then random / ordered / SEC with one seed, 150 GRPO steps each on sums levelled by
# their carries, two runs at a time; then a summary of what the curricula did (the sampled level per
# quarter of training, the wasted share of rollout groups, ID / OOD / level-3 pass@1, the steps to the
# pre-registered mastery thresholds) and the report with Figure 3 in report/testbed_carry_quick/. The
# full comparison, 4 curricula x 5 seeds with paired intervals, is `bash sweeps/testbed_carry.sh`; the
# first testbed's quick sweep is `make sweep-testbed`. Extra arguments go to sec.launch.
# BACKEND=verl: the same through verl's own trainer loop on the CPU.
#   bash sweeps/testbed_carry_quick.sh
set -euo pipefail
EXPERIMENT=testbed_carry PROFILE="${PROFILE:-testbed_carry_quick}" NAME=testbed_carry_quick \
    exec bash "$(dirname "$0")/testbed_quick.sh" "$@"
