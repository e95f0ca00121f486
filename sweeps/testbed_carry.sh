#!/usr/bin/env bash
# The carry regime of the testbed, end to end on this machine (issue 25, docs/testbed.md "The carry
# regime"): task=arith_carry (three-digit sums levelled by carries) with the carry model (built once on
# first use, ~5 min), curricula random / ordered / SEC / learnability x seeds 0-4 (20 runs, two at a
# time), then the report: Figure 3 with each curriculum's sampled-level slope and its 95% interval, the
# step at which each level is first mastered (censored runs shown), each curriculum minus random
# paired by seed (95% intervals) for the hardest training level's, ID and OOD pass@1 (best checkpoint
# and last), the wasted share and rollouts per signal group; per-level pass@1 and the bandit's Q over
# training. Settings are pre-registered in conf/experiment/testbed_carry.yaml,
# conf/profile/testbed_carry.yaml and conf/task_model/arith_carry_testbed_carry.yaml.
# BACKEND=verl runs the same jobs through verl's own trainer loop on the CPU (backend=verl
# backend.device=cpu, docs/verl.md; ~7x the time) into multirun/testbed_carry_verl.
# Interrupted? Run it again: finished runs are skipped, the others resume from their checkpoint.
# Extra arguments go to sec.launch, e.g. seed=100 for a pilot.
#   bash sweeps/testbed_carry.sh
set -euo pipefail
EXPERIMENT=testbed_carry PROFILE="${PROFILE:-testbed_carry}" NAME=testbed_carry FIGURE3=random,ordered,sec,learnability \
    exec bash "$(dirname "$0")/testbed_quick.sh" "$@"
