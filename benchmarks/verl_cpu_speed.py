"""Seconds per training step of verl's own loop on the CPU against TRL, at the testbed's size.

Runs the curriculum testbed's steps (conf/profile/testbed.yaml: the ~1M-parameter testbed model,
32 problems x 8 rollouts at temperature 1.0, answers of at most 8 tokens, one torch thread per
process as in the sweeps) once per engine, one run at a time, without evaluation or
checkpoints, and prints where a step's time goes:

* TRL (``backend=trl``): generation = ``_generate_and_score_completions`` (rollouts with
  ``model.generate``, rewards, advantages; ``generation_s``), update = the rest of TRL's step
  (forward, backward, optimizer).
* verl (``backend=verl backend.device=cpu``): generation = verl's ``timing_s/gen`` (the agent
  loop: per-rollout tokenization, Ray calls to the load balancer, the hf rollout server and the
  reward worker), of which the server's ``model.generate`` time (its ``stats_file``) is shown
  apart; update = ``timing_s/old_log_prob`` + ``timing_s/update_actor`` (FSDP2 forward of the old
  log-probs, then forward, backward and optimizer); weight sync = ``timing_s/update_weights``
  (verl's naive checkpoint engine into the server); rest = the step's other work (DataProto
  transfers between the driver and the workers, advantages, the curriculum's draw and feedback).
* startup = launch to the first step's end, less that step (Ray, the workers, model load).

The first ``--skip`` steps (warm-up: imports, first calls) are left out of the means.

    python benchmarks/verl_cpu_speed.py [--steps 20] [--skip 2] [--out outputs/verl_cpu_speed]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: the testbed's step without evaluation or checkpoints
COMMON = ["experiment=testbed", "profile=testbed_quick", "curriculum=random", "seed=0", "eval.every=0"]
COMMON += ["eval.at_start=false", "train.save_every=0"]


def launch(run: Path, steps: int, engine: list[str]) -> float:
    """``python -m sec.launch`` for one run; returns its wall-clock seconds."""
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "sec.launch", *COMMON, f"train.steps={steps}", *engine, f"hydra.run.dir={run}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    if r.returncode != 0:
        raise SystemExit(f"run {run} failed: {r.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - t0


def train_records(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "train"]


def mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else float("nan")


def trl_row(run: Path, wall: float, skip: int) -> dict[str, float]:
    recs = train_records(run)
    steady = recs[skip:]
    step = [r["step_time_s"] for r in steady]
    gen = [r["generation_s"] for r in steady]
    return {
        "step": mean(step),
        "generation": mean(gen),
        "model.generate": float("nan"),
        "update": mean([s - g for s, g in zip(step, gen, strict=True)]),
        "weight sync": 0.0,
        "rest": 0.0,
        "startup": wall - sum(r["wall_time_s"] for r in recs),
    }


def verl_row(run: Path, wall: float, skip: int, stats: Path) -> dict[str, float]:
    recs = train_records(run)
    steady = recs[skip:]

    def t(r: dict, key: str) -> float:
        return float(r.get(f"verl/timing_s/{key}", 0.0))

    batches = [json.loads(x) for x in stats.read_text().splitlines()] if stats.exists() else []
    per_step: dict[int, float] = {}
    for b in batches:  # generation of step t runs on the weights of step t-1
        per_step[int(b["global_steps"]) + 1] = per_step.get(int(b["global_steps"]) + 1, 0.0) + float(b["generate_s"])
    rows = []
    for r in steady:
        update = t(r, "old_log_prob") + t(r, "update_actor")
        rows.append(
            {
                "step": t(r, "step"),
                "generation": t(r, "gen"),
                "model.generate": per_step.get(int(r["step"]), float("nan")),
                "update": update,
                "weight sync": t(r, "update_weights"),
                "rest": t(r, "step") - t(r, "gen") - update - t(r, "update_weights"),
            }
        )
    out = {k: mean([row[k] for row in rows]) for k in rows[0]}
    out["startup"] = wall - sum(t(r, "step") for r in recs)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--skip", type=int, default=2, help="warm-up steps left out of the means")
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "verl_cpu_speed")
    args = ap.parse_args(argv)
    out = args.out.resolve()
    rows = {}
    trl_run = out / f"trl-{int(time.time())}"
    rows["TRL"] = trl_row(trl_run, launch(trl_run, args.steps, ["backend=trl"]), args.skip)
    verl_run = out / f"verl-{int(time.time())}"
    stats = verl_run / "hf_rollout_stats.jsonl"
    engine = ["backend=verl", "backend.device=cpu", f"backend.cpu.rollout.stats_file={stats}"]
    rows["verl (CPU)"] = verl_row(verl_run, launch(verl_run, args.steps, engine), args.skip, stats)

    cols = ["step", "generation", "model.generate", "update", "weight sync", "rest", "startup"]
    print(f"seconds per step, mean of steps {args.skip + 1}-{args.steps} (startup: seconds once per run)")
    print("| engine | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join("-" if row[c] != row[c] else f"{row[c]:.2f}" for c in cols) + " |")
    ratio = rows["verl (CPU)"]["step"] / rows["TRL"]["step"]
    print(f"verl / TRL per step: {ratio:.1f}x; runs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
