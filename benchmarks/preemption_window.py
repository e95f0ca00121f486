"""How long before a time limit SLURM's warning signal must come (``slurm.signal_delay_s``):
one training step + one evaluation + one checkpoint save, measured.

The TRL backend acts on the signal at the first safe point: it finishes the step it is in,
that step's evaluation if one is due, and the checkpoint save (sec/preempt.py). The worst case
is a signal just after a step began, on a step that evaluates: step + eval + save. This runs a
profile for ``--steps`` steps with an evaluation and a checkpoint every step and reads, per
step, from the run's own log and files:

* step: from the end of the previous save to the step's train record (generation + update),
* eval: the evaluation's own time (its log line),
* save: from the end of the evaluation to the checkpoint's ``curriculum.json`` (the engine's
  model, optimizer and RNG files, then the curriculum state).

    python benchmarks/preemption_window.py [--profile tiny] [--steps 3] [override ...]

It prints a table and the worst step + eval + save; the presets in conf/slurm/ (and a
profile's ``slurm.signal_delay_s``) should be at least twice that on the machine they target.
The load average is printed with it: other jobs on the machine slow every phase.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOG_LINE = re.compile(r"^\[(?P<t>[\d-]+ [\d:,]+)\]\[(?P<who>[\w.]+)\]\[\w+\] - (?P<msg>.*)$", re.M)


def stamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def phases(run_dir: Path) -> list[dict[str, float]]:
    """Per step: ``step``, ``eval`` and ``save`` seconds (module doc)."""
    steps: dict[int, dict[str, float]] = {}
    for m in LOG_LINE.finditer((run_dir / "launch.log").read_text()):
        msg = m["msg"]
        if m["who"] == "sec.backends.trl" and (s := re.match(r"step (\d+)/", msg)):
            steps.setdefault(int(s.group(1)), {})["logged"] = stamp(m["t"])
        elif m["who"] == "sec.evaluate" and (e := re.match(r"eval step (\d+) .* in ([\d.]+)s", msg)):
            steps.setdefault(int(e.group(1)), {}).update(eval=float(e.group(2)), eval_end=stamp(m["t"]))
    rows, prev_save_end = [], None
    for n in sorted(steps):
        done = run_dir / "checkpoints" / f"checkpoint-{n}" / "curriculum.json"
        if "logged" not in steps[n] or "eval_end" not in steps[n] or not done.exists():
            continue
        save_end = done.stat().st_mtime
        row = {"step_no": n, "eval": steps[n]["eval"], "save": save_end - steps[n]["eval_end"]}
        if prev_save_end is not None:  # the first step also loads the model: not a step time
            row["step"] = steps[n]["logged"] - prev_save_end
        rows.append(row)
        prev_save_end = save_end
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="tiny")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("overrides", nargs="*", help="more Hydra overrides, e.g. task=arith")
    args = ap.parse_args()
    run_dir = Path(tempfile.mkdtemp(prefix="preemption_window_")) / "run"
    cmd = [sys.executable, "-m", "sec.launch", f"profile={args.profile}", f"train.steps={args.steps}"]
    cmd += ["train.save_every=1", "train.save_total_limit=null", "eval.every=1", *args.overrides]
    cmd.append(f"hydra.run.dir={run_dir}")
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    rows = [r for r in phases(run_dir) if "step" in r]
    load = os.getloadavg()
    print(f"profile={args.profile} {' '.join(args.overrides)}: {run_dir}")
    print(f"{datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f}\n")
    print("| step | step (s) | eval (s) | save (s) | step + eval + save (s) |")
    print("|---|---|---|---|---|")
    for r in rows:
        total = r["step"] + r["eval"] + r["save"]
        print(f"| {r['step_no']} | {r['step']:.1f} | {r['eval']:.1f} | {r['save']:.1f} | {total:.1f} |")
    worst = max(r["step"] for r in rows) + max(r["eval"] for r in rows) + max(r["save"] for r in rows)
    print(f"\nworst step + worst eval + worst save: {worst:.0f} s; signal_delay_s >= {2 * worst:.0f} s (x2)")


if __name__ == "__main__":
    main()
