"""Puzzle generation throughput at 1 and 2 (or more) workers: items/s and speed-up.

Generates ``--n`` train items of one level of each task with the project's own generator
(sec.tasks.generation.generate_items: per-item time bound, forked workers) and prints a table.
Target on a 2-core machine: >= 1.8x at 2 workers.

    python benchmarks/data_generation.py [--workers 1 2] [--tasks zebra] [--n countdown=800 zebra=160 arc=4000]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sec.tasks.generation import generate_items  # noqa: E402
from sec.tasks.registry import task_for  # noqa: E402
from sec.workspace import task_components  # noqa: E402

DEFAULT_N = {"countdown": 800, "zebra": 160, "arc": 4000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--level", type=int, default=3, help="level to generate (3 = hardest train level)")
    ap.add_argument("--tasks", nargs="+", default=list(DEFAULT_N), choices=list(DEFAULT_N))
    ap.add_argument("--n", nargs="*", default=[], help="items per task, e.g. zebra=160")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    n_of = dict(DEFAULT_N, **{k: int(v) for k, v in (x.split("=") for x in args.n)})
    rows = []
    for task in args.tasks:
        n = n_of[task]
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            comp = task_components(compose("config", overrides=[f"task={task}"]).task)[0]
        rates = {}
        for w in args.workers:
            t0 = time.perf_counter()
            generate_items(task_for(comp), args.level, comp["levels"][args.level], n, 0, "train",
                           workers=w, progress=False)  # fmt: skip
            rates[w] = n / (time.perf_counter() - t0)
        base = rates[args.workers[0]]
        for w in args.workers:
            rows.append((task, f"L{args.level}", n, w, f"{rates[w]:.1f}", f"{rates[w] / base:.2f}x"))
    header = ("task", "level", "items", "workers", "items/s", "speed-up")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for r in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
