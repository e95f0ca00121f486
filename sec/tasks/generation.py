"""Time-bounded, resumable generation of a levelled task's problem records (SEC.md §2).

Items come from the task's dataset (:meth:`sec.tasks.puzzle.PuzzleTask.make_dataset`, a
reasoning-gym dataset for the paper's puzzles) at indices 0, 1, 2, ...; each item becomes one
record through the task's question and answer payload.

Seeds. reasoning-gym item ``i`` of a dataset with seed ``s`` is drawn from ``Random(s + i)``, so two
splits whose seeds are close would share items. :func:`derive_seed` therefore maps
``(base seed, task, level, split)`` through SHA-256 to a 63-bit seed (stable across processes and
Python versions, unlike ``hash()``); overlapping index ranges are then astronomically unlikely, and
:func:`generate_items` additionally drops train items whose question equals a test question.

Time bound. reasoning-gym's ``arc_1d`` can loop forever (``recolor_blocks_from_palette`` at grid
sizes >= 45 retries an impossible example without limit). Every item is generated under a
per-item CPU-time limit (``ITIMER_PROF`` / ``SIGPROF`` interval timer, in the main thread or in worker
processes). CPU time, not wall-clock time: on a loaded machine a slow but finite item (zebra 6x6 takes
0.5-5 s of CPU) must not be mistaken for a hang, while a hang (a busy loop) still burns CPU and is cut;
an item that times out or raises is skipped, counted and logged with a warning, and the next index
is tried so every level still gets exactly ``n`` items. Too many skips raise
``ItemGenerationError`` (a ``RuntimeError``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tqdm.auto import tqdm

from sec.tasks.records import ItemSource
from sec.tasks.registry import get_task
from sec.tasks.timed_items import ItemGenerationError, default_workers, iter_raw

__all__ = ["DEFAULT_ITEM_TIMEOUT_S", "ItemGenerationError", "default_workers", "derive_seed", "generate_items"]

log = logging.getLogger("sec.tasks")

#: Default per-item CPU-time limit in seconds (zebra 6x6 items take 0.5-5 s of CPU).
DEFAULT_ITEM_TIMEOUT_S = 30.0
_MAX_CONSECUTIVE_SKIPS = 5


def derive_seed(seed: int, task_name: str, level: int, split: str) -> int:
    """Stable 63-bit reasoning-gym seed for one (task, level, split): first 8 bytes of
    ``sha256(f"sec.tasks/{task_name}/{split}/L{level}/{seed}")`` shifted right by one bit."""
    digest = hashlib.sha256(f"sec.tasks/{task_name}/{split}/L{int(level)}/{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def generate_items(
    task: ItemSource | str,
    level: int,
    level_kwargs: Mapping[str, Any],
    n: int,
    seed: int,
    split: str,
    *,
    exclude_questions: Iterable[str] = (),
    item_timeout_s: float = DEFAULT_ITEM_TIMEOUT_S,
    workers: int | None = None,
    progress: bool = True,
    stats: dict[str, Any] | None = None,
    resume: Mapping[str, Any] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    progress_every: int = 500,
) -> list[dict[str, Any]]:
    """Generate ``n`` problem records of one (task, level, split).

    Items come from ``task.make_dataset(level_kwargs, derive_seed(seed, task.name, level, split))``
    (``reasoning_gym.create_dataset(task.generator, seed=..., **level_kwargs)`` by default) at
    indices 0, 1, 2, ...; an index is skipped (and the next one used) when generating it raises or
    exceeds ``item_timeout_s`` seconds (warning logged with the count) or when its question is in
    ``exclude_questions`` (used to drop train items equal to a test item; count logged). Output is
    deterministic given the arguments (unless items time out, which depends on machine speed;
    those are reported).

    Args:
        task: the task (an :class:`~sec.tasks.records.ItemSource`, e.g. a
            :class:`sec.tasks.puzzle.PuzzleTask`) or its registered name; its name is
            the record ``task`` field and a seed/ID component (e.g. ``"countdown"``).
        level: difficulty level (1 = easiest), stored in the record.
        level_kwargs: reasoning-gym dataset-config kwargs of this level (from the Hydra config).
        n: number of records to return (> 0).
        seed: base seed of the task; the per-(task, level, split) seed is derived from it.
        split: ``"train"`` or ``"test"``.
        exclude_questions: questions that must not be produced.
        item_timeout_s: per-item CPU-time limit in seconds.
        workers: generator processes; ``None`` picks :func:`default_workers`.
        progress: show a tqdm bar.
        stats: if given, filled with ``skipped`` (reasoning-gym indices that failed or timed
            out), ``dropped`` (excluded questions), ``seconds`` and ``workers``.
        resume: a state passed to ``on_progress`` by an interrupted call with the same arguments;
            generation continues from it and returns what the uninterrupted call would have.
        on_progress: called with the generation state (``records``, ``next_index``, ``skipped``,
            ``dropped``, ``seconds``) every ``progress_every`` records, so a caller can save it.

    Returns:
        ``n`` records with fields ``id`` (``"{task}/{split}/L{level}/{k:05d}"``), ``task``, ``level``,
        ``split``, ``question``, ``prompt``, ``answer`` (JSON string), ``metadata`` (JSON string).

    Raises:
        ValueError: unknown task, bad split, non-positive ``n``/timeout.
        ItemGenerationError: more than ``max(5, n // 20)`` items (or 5 in a row) failed or timed out.
    """
    if isinstance(task, str):
        task = get_task(task)  # type: ignore[assignment]
    if not hasattr(task, "make_dataset"):
        raise ValueError(f"task {task.name!r} is not generated item by item (not a PuzzleTask)")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not item_timeout_s > 0:
        raise ValueError(f"item_timeout_s must be positive, got {item_timeout_s!r}")
    run = _Run(task, level, split, n, set(exclude_questions), resume or {})
    n_workers = default_workers(n) if workers is None else int(workers)
    # small chunks balance uneven item times; 64 caps the per-message overhead on fast generators
    chunk = max(1, min(64, n // (16 * max(1, n_workers))))
    if run.start:
        log.info("%s: resuming at %d records (reasoning-gym index %d)", run.desc, len(run.records), run.start)
    rg_seed = derive_seed(seed, task.name, level, split)
    raw = iter_raw(
        task, level_kwargs, rg_seed, float(item_timeout_s), n_workers, chunk, n - len(run.records), run.start
    )
    with tqdm(total=n, initial=len(run.records), desc=run.desc, unit="item", disable=not progress, leave=False) as bar:
        try:
            for idx, item, reason in raw if len(run.records) < n else ():
                if item is None:
                    run.skip(idx, reason, level_kwargs)
                    continue
                if not run.add(item):
                    continue
                bar.update(1)
                if len(run.records) >= n:
                    break
                if on_progress is not None and len(run.records) % progress_every == 0:
                    on_progress(run.state(idx + 1))
        finally:
            raw.close()
    elapsed = run.seconds()
    if run.skipped:
        log.warning(
            "%s: %d reasoning-gym items skipped (failed/timed out): %s", run.desc, len(run.skipped), run.skipped
        )
    if run.dropped:
        log.info("%s: dropped %d items whose question equals a test question", run.desc, run.dropped)
    log.info("%s: %d items in %.1f s (%.2f ms/item, %d worker(s))", run.desc, n, elapsed, 1000 * elapsed / n, n_workers)
    if stats is not None:
        stats.update(skipped=len(run.skipped), dropped=run.dropped, seconds=elapsed, workers=n_workers)
    return run.records


class _Run:
    """The state of one :func:`generate_items` call (resumable: :meth:`state`)."""

    def __init__(
        self, task: ItemSource, level: int, split: str, n: int, excluded: set[str], resume: Mapping[str, Any]
    ) -> None:
        self.task, self.level, self.split, self.excluded = task, int(level), split, excluded
        self.records: list[dict[str, Any]] = list(resume.get("records", []))[:n]
        self.skipped: list[tuple[int, str]] = [(int(i), str(r)) for i, r in resume.get("skipped", [])]
        self.dropped = int(resume.get("dropped", 0))
        self.start = int(resume.get("next_index", 0))
        self.earlier_s = float(resume.get("seconds", 0.0))
        self.t0 = time.perf_counter()
        self.consecutive = 0
        self.max_skips = max(5, n // 20)
        self.desc = f"{task.name} {split} L{level}"

    def seconds(self) -> float:
        return self.earlier_s + time.perf_counter() - self.t0

    def state(self, next_index: int) -> dict[str, Any]:
        return {
            "records": self.records,
            "next_index": next_index,
            "skipped": self.skipped,
            "dropped": self.dropped,
            "seconds": self.seconds(),
        }

    def skip(self, idx: int, reason: str, level_kwargs: Mapping[str, Any]) -> None:
        """Count a failed / timed-out index; too many raise :class:`ItemGenerationError`."""
        self.skipped.append((idx, reason))
        self.consecutive += 1
        log.warning("%s: skipped reasoning-gym item %d (%s)", self.desc, idx, reason)
        if len(self.skipped) > self.max_skips or self.consecutive >= _MAX_CONSECUTIVE_SKIPS:
            raise ItemGenerationError(
                f"{self.desc}: {self.task.name} with {dict(level_kwargs)} failed on {len(self.skipped)} items "
                f"({self.consecutive} in a row; last: {reason}); the level config is probably "
                "unsatisfiable for reasoning-gym"
            )

    def add(self, item: Mapping[str, Any]) -> bool:
        """Append the item's record unless its question is excluded; whether it was added."""
        self.consecutive = 0
        question = self.task.question(item)
        if question in self.excluded:
            self.dropped += 1
            return False
        name, k = self.task.name, len(self.records)
        self.records.append(
            {
                "id": f"{name}/{self.split}/L{self.level}/{k:05d}",
                "task": name,
                "level": self.level,
                "split": self.split,
                "question": question,
                "prompt": self.task.prompt_template.format(question=question),
                "answer": json.dumps(self.task.answer_payload(item), sort_keys=True),
                "metadata": json.dumps(item.get("metadata") or {}, sort_keys=True, default=str),
            }
        )
        return True
