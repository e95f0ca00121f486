"""Generate (or check) the puzzle data sets ahead of training: ``python -m sec.data``.

The sets are exactly those the runs read (same cache, same key; sec/tasks/data.py): generated
once per config in (split, level) shards that an interrupted generation resumes, in parallel
over the machine's cores, with a manifest beside each set (reasoning-gym version, seeds,
per-shard counts, skipped items, checksums).

    python -m sec.data --tasks countdown zebra arc --profile paper      # the paper's sets
    python -m sec.data --tasks puzzles --profile cpu --check            # what is cached?
    python -m sec.data --tasks arc --profile paper task.seed=7          # any Hydra override
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from sec.tasks.data import cache_key, check_task_data, load_task_data, manifest_path
from sec.workspace import task_components

CONF = Path(__file__).resolve().parent.parent / "conf"


def main(argv: list[str] | None = None) -> int:
    """Generate or check each task's data; prints one table row per task. Returns the exit
    status: 0, or 1 when ``--check`` finds a set that is not ``ok``."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=["countdown", "zebra", "arc"], help="task configs (conf/task)")
    ap.add_argument("--profile", default="paper", help="size profile (conf/profile); paper = SEC.md sizes")
    ap.add_argument("--workers", type=int, default=None, help="generator processes (default: all cores)")
    ap.add_argument("--check", action="store_true", help="only report the state of each cached set")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. task.train_per_level=100")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    workers = args.workers or len(os.sched_getaffinity(0))

    rows, status = [], 0
    for task in args.tasks:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("config", overrides=[f"task={task}", f"profile={args.profile}", *args.overrides])
        cache = Path(str(cfg.paths.cache_dir)) / "data"
        for comp in task_components(cfg.task):
            if args.check:
                state = check_task_data(comp, cache)
                status |= state != "ok"
                rows.append((comp["name"], cache_key(comp), state, "", "", ""))
                continue
            t0 = time.perf_counter()
            df = load_task_data({**comp, "gen_workers": workers}, cache)
            seconds = time.perf_counter() - t0
            path = cache / comp["name"] / f"{cache_key(comp)}.parquet"
            manifest = json.loads(manifest_path(path).read_text())
            rows.append(
                (
                    comp["name"],
                    cache_key(comp),
                    str(path),
                    len(df),
                    manifest.get("skipped_items", sum(manifest.get("dropped", {}).values())),
                    f"{seconds:.1f}",
                )
            )
    header = ("task", "key", "file / state", "rows", "skipped", "seconds")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for r in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)))
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
