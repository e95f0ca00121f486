"""Dynamic sampling's bookkeeping per training step (issue 26; sec/dynamic_sampling.py).

At the paper's batch (256 groups x 8 rollouts, SEC.md §3) a step with dynamic sampling draws
``--draws`` rollout batches. Per step this times, apart from the rollouts themselves:

* ``sample``: the curriculum's draw of each batch (``CurriculumFeed.draw(256)`` of ``curriculum=sec``);
* ``drop``: each batch's signal mask and the selection of the groups kept
  (:func:`sec.dynamic_sampling.signal_groups`, :class:`~sec.dynamic_sampling.GroupSelection`) and the
  final plan (the cut surplus, the filler at the cap);
* ``merge``: the TRL backend's :func:`sec.backends.trl_merge.merge_groups` of the kept groups' tensors
  (prompt and completion ids and masks, advantages: ``--prompt`` and ``--tokens`` wide), the one
  part that moves data; it grows with the batch's tokens, as the rollouts do.

Target: sample + drop <= 1 ms per step. Rewards are Bernoulli(0.5) per rollout with a share
``--all-equal`` of groups forced to one value, so that the draws drop groups as a step at that
zero-variance share would.

    python benchmarks/dynamic_sampling_overhead.py [--draws 3] [--tokens 512] [--prompt 256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sec.curriculum import CurriculumFeed, build_curriculum  # noqa: E402
from sec.dynamic_sampling import GroupSelection  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from curriculum_overhead import curriculum_config  # noqa: E402


def rewards(rng: np.random.Generator, groups: int, g: int, all_equal: float) -> np.ndarray:
    """Bernoulli(0.5) rewards, shape (groups * g,), a share ``all_equal`` of groups all 0 or all 1."""
    r = rng.integers(0, 2, size=(groups, g)).astype(np.float64)
    same = rng.random(groups) < all_equal
    r[same] = rng.integers(0, 2, size=(int(same.sum()), 1))
    return r.ravel()


def trl_output(rng: np.random.Generator, rows: int, prompt: int, tokens: int):
    import torch

    width = tokens - int(rng.integers(0, 32))  # draws differ in width: the merge pads
    return {
        "prompt_ids": torch.from_numpy(rng.integers(0, 50_000, size=(rows, prompt))),
        "prompt_mask": torch.ones(rows, prompt, dtype=torch.long),
        "completion_ids": torch.from_numpy(rng.integers(0, 50_000, size=(rows, width))),
        "completion_mask": torch.ones(rows, width, dtype=torch.long),
        "advantages": torch.from_numpy(rng.standard_normal(rows).astype(np.float32)),
        "num_items_in_batch": torch.tensor(rows * tokens),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, default=256)
    ap.add_argument("--g", type=int, default=8)
    ap.add_argument("--draws", type=int, default=3, help="rollout batches per step")
    ap.add_argument("--all-equal", type=float, default=0.6, help="share of groups whose rewards are all equal")
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--reps", type=int, default=50)
    args = ap.parse_args()
    import torch

    from sec.backends.trl_merge import merge_groups

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    cfg = curriculum_config("sec")
    problems = [{"level": 1 + i % 3} for i in range(30_000)]
    feed = CurriculumFeed(build_curriculum(cfg, [(p["level"],) for p in problems], total_steps=10, seed=0), problems)
    outs = [trl_output(rng, args.groups * args.g, args.prompt, args.tokens) for _ in range(args.draws)]
    times: dict[str, list[float]] = {"sample": [], "drop": [], "merge": []}
    kept = []
    for _ in range(args.reps):
        step_rewards = [rewards(rng, args.groups, args.g, args.all_equal) for _ in range(args.draws)]
        t0 = time.perf_counter()
        for _ in range(args.draws):
            feed.draw(args.groups)
        t1 = time.perf_counter()
        sel = GroupSelection(args.groups, args.g, args.draws)
        for r in step_rewards:
            sel.add(r)
        plan = sel.plan()
        t2 = time.perf_counter()
        merge_groups(outs[: len(plan)], plan, args.g, 0)
        t3 = time.perf_counter()
        feed.pop_stats()
        kept.append(sel.kept)
        times["sample"].append(t1 - t0)
        times["drop"].append(t2 - t1)
        times["merge"].append(t3 - t2)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"dynamic sampling bookkeeping per step: {args.groups} groups x {args.g} rollouts, {args.draws} draws, "
          f"{args.all_equal:.0%} of groups all-equal, prompt {args.prompt} + {args.tokens} tokens")  # fmt: skip
    print(f"machine: {os.cpu_count()} CPUs, load average (1/5/15 min) {load}; torch threads 1; median of {args.reps}")
    print(f"groups with signal kept per step: median {statistics.median(kept):.0f} of {args.groups}")
    print()
    print(f"{'part':<16}{'ms / step':>10}")
    for k in ("sample", "drop", "merge"):
        print(f"{k:<16}{med[k]:>10.3f}")
    book = med["sample"] + med["drop"]
    print(f"{'sample + drop':<16}{book:>10.3f}   target <= 1 ms: {'met' if book <= 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
