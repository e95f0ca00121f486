"""Curriculum overhead per training step, against the time of one training step.

For the paper's batch (256 problems x 8 rollouts, SEC.md §3) and every curriculum config
(``conf/curriculum/*.yaml``, composed by Hydra and built as a run builds it), times the work the
curriculum adds to a step: ``draw`` (``sample(256)`` and its logged stats), ``update`` (the
policy's update on 2048 rollout rows with their |A| and task rewards, and its stats) and, listed
apart because the engine does it where its tensors live, the token-mean |A| of the 2048
rollouts (``T`` response tokens each). Arms: ``arms`` levels of 10,000 problems each (for
``(task, level)`` configs: 3 tasks x ``arms / 3`` levels).
Targets: sample + update <= 1 ms per step; everything together <= 0.1 % of a step.

The step time comes from ``train`` records (``wall_time_s``) of the run dirs given with
``--runs`` (default: every ``metrics.jsonl`` under ``multirun/`` and ``outputs/``); with
none found, ``--measure`` runs one step of the default profile (about a minute on 2 cores).

    python benchmarks/curriculum_overhead.py [--runs DIR ...] [--measure] [--tokens 512] [--only sec random]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from sec.curriculum import CurriculumFeed, build_curriculum, token_mean_abs  # noqa: E402

CONF = ROOT / "conf"


def curriculum_config(name: str) -> dict:
    """The resolved ``curriculum`` node of ``curriculum=<name>`` (the defaults of a run)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"curriculum={name}"])
    return OmegaConf.to_container(cfg.curriculum, resolve=True)  # type: ignore[return-value]


def time_curriculum(name: str, n_arms: int, batch: int, rollouts: int, tokens: int, reps: int) -> dict[str, float]:
    """Median seconds of one step's curriculum work: ``draw`` (sample + logged stats),
    ``abs_adv`` (token-mean |A| of every rollout) and ``update`` (+ logged stats)."""
    rng = np.random.default_rng(0)
    cfg = curriculum_config(name)
    two_d = list(cfg["arm_fields"]) == ["task", "level"]
    levels = max(n_arms // 3, 1) if two_d else n_arms
    problems = [{"task": f"t{i % 3}", "level": 1 + (i // 3) % levels} for i in range(10_000 * n_arms)]
    arms = [tuple(p[f] for f in cfg["arm_fields"]) for p in problems]
    feed = CurriculumFeed(build_curriculum(cfg, arms, total_steps=reps, seed=0), problems)
    adv = rng.standard_normal(batch * rollouts).astype(np.float32)
    mask = (rng.random((batch * rollouts, tokens)) < 0.8).astype(np.float32)
    rewards = rng.choice([0.0, 0.1, 1.0], size=(reps, batch * rollouts))
    times: dict[str, list[float]] = {"draw": [], "abs_adv": [], "update": [], "total": []}
    for step in range(reps):
        t0 = time.perf_counter()
        idx = feed.draw(batch)
        t1 = time.perf_counter()
        values = token_mean_abs(adv, mask)
        t2 = time.perf_counter()
        feed.feed(np.repeat(idx, rollouts), values, rewards[step])
        feed.pop_stats()
        t3 = time.perf_counter()
        for k, v in (("draw", t1 - t0), ("abs_adv", t2 - t1), ("update", t3 - t2), ("total", t3 - t0)):
            times[k].append(v)
    return {k: statistics.median(v) for k, v in times.items()}


def step_time(runs: list[Path]) -> tuple[float | None, int]:
    """Median ``wall_time_s`` of the train records under the given dirs."""
    values = []
    for d in runs:
        for path in d.rglob("metrics.jsonl"):
            for line in path.read_text().splitlines():
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if r.get("kind") == "train" and r.get("wall_time_s"):
                    values.append(float(r["wall_time_s"]))
    return (statistics.median(values) if values else None), len(values)


def measure_one_step() -> Path:
    out = Path(tempfile.mkdtemp(prefix="sec-bench-"))
    cmd = [sys.executable, "-m", "sec.launch", "train.steps=1", "eval.every=0", "eval.k=1",
           "eval.max_problems_per_level=1", f"hydra.run.dir={out}"]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, check=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="*", type=Path, default=[ROOT / "multirun", ROOT / "outputs"])
    ap.add_argument("--measure", action="store_true", help="run one default-profile step if no runs are found")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rollouts", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=512, help="response tokens per rollout (mask width)")
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--only", nargs="*", help="curriculum configs to time (default: every conf/curriculum/*.yaml)")
    args = ap.parse_args()
    names = args.only or sorted(p.stem for p in (CONF / "curriculum").glob("*.yaml"))

    step_s, n_steps = step_time([d for d in args.runs if d.exists()])
    if step_s is None and args.measure:
        step_s, n_steps = step_time([measure_one_step()])
    rows = []
    for name in names:
        for n_arms in (3, 9):
            t = time_curriculum(name, n_arms, args.batch, args.rollouts, args.tokens, args.reps)
            own = t["draw"] + t["update"]
            share = f"{100 * t['total'] / step_s:.4f} %" if step_s else "n/a"
            ms = [f"{t[k] * 1e3:.3f}" for k in ("draw", "update")] + [f"{own * 1e3:.3f}"]
            ms += [f"{t[k] * 1e3:.3f}" for k in ("abs_adv", "total")]
            rows.append((name, n_arms, *ms, share, "yes" if own <= 1e-3 else "NO"))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"curriculum work per step: batch {args.batch} x {args.rollouts} rollouts x {args.tokens} tokens")
    print(f"machine: {os.cpu_count()} CPUs, load average (1/5/15 min) {load} at the end of the run")
    if step_s:
        print(f"training step (default profile): median {step_s:.1f} s over {n_steps} steps")
    else:
        print("training step: no runs found (pass --runs DIR or --measure)")
    header = (
        "curriculum", "arms", "draw ms", "update ms", "sample+update ms", "|A| ms", "total ms", "total % of step",
        "sample+update <= 1 ms",
    )  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for r in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
