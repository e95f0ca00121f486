#!/usr/bin/env bash
# Run a command as on a machine without SLURM, even where SLURM is installed: every PATH dir
# that holds a SLURM client command (srun, sbatch, ...) is replaced by a temporary dir of
# links to everything else in it. `.ci/run` runs the test suite this way before it starts the
# local SLURM, so that a test that needs SLURM without the `slurm` marker fails in CI as it
# would on a fresh machine.
#
#   bash scripts/without_slurm.sh make test
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 command [args...]" >&2; exit 2; }
SLURM_COMMANDS=(srun sbatch salloc sinfo squeue sacct scancel scontrol sacctmgr sstat sattach)
shadow=$(mktemp -d)
trap 'rm -rf "$shadow"' EXIT
new_path=
IFS=: read -ra dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
  has=
  for cmd in "${SLURM_COMMANDS[@]}"; do [ -e "$dir/$cmd" ] && has=1 && break; done
  if [ -n "$has" ]; then
    copy=$shadow/$(printf '%s' "$dir" | tr '/' '_')
    mkdir -p "$copy"
    for f in "$dir"/* "$dir"/.[!.]*; do
      [ -e "$f" ] || continue
      name=${f##*/}
      case " ${SLURM_COMMANDS[*]} " in *" $name "*) continue ;; esac
      ln -s "$f" "$copy/$name"
    done
    dir=$copy
  fi
  new_path=${new_path:+$new_path:}$dir
done
for cmd in "${SLURM_COMMANDS[@]}"; do
  if PATH=$new_path command -v "$cmd" >/dev/null; then echo "without_slurm: $cmd still reachable" >&2; exit 1; fi
done
PATH=$new_path "$@"
