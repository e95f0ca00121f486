"""Puzzle item generation with reasoning-gym and the paper's prompts (SEC.md §2).

Difficulty levels are not defined here: each level is a dict of reasoning-gym dataset-config kwargs
read from the Hydra task config (``conf/task/*.yaml``) and passed through to
``reasoning_gym.create_dataset(generator, seed=..., size=..., **level_kwargs)``.

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

import contextlib
import hashlib
import json
import logging
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from tqdm.auto import tqdm

from sec.tasks.rewards import SUPPORTED_GENERATORS

__all__ = [
    "ARC_INSTRUCTION",
    "ARITH_INSTRUCTION",
    "COUNTDOWN_QUESTION",
    "TINYZERO_TEMPLATE",
    "ZEBRA_INSTRUCTION",
    "ItemGenerationError",
    "bare_arith_prompt",
    "build_question",
    "derive_seed",
    "generate_items",
    "render_prompt",
]

log = logging.getLogger("sec.tasks")

#: The paper's plain TinyZero prompt (SEC.md §2; no chat template).
TINYZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user "
    "with the answer.\nUser: {question}\nAssistant: Let me solve this step by step."
)
#: Countdown question (SEC.md §2), built from the item's numbers and target.
COUNTDOWN_QUESTION = (
    "Using the numbers {numbers}, create an equation that equals {target}. You can use basic arithmetic "
    "operations (+, -, *, /) and each number can only be used once. Show your work and put your final "
    "answer in \\boxed{{}}, e.g. \\boxed{{(1 + 2) / 3}}."
)
#: Appended to reasoning-gym's zebra puzzle text (SEC.md §2).
ZEBRA_INSTRUCTION = "Provide only the name of the person as your final answer in \\boxed{}, e.g. \\boxed{Alice}."
#: Appended to reasoning-gym's ARC-1D text (SEC.md §2).
ARC_INSTRUCTION = "Your final answer must be placed in \\boxed{} and should be just the test output grid itself."
#: Appended to reasoning-gym's basic_arithmetic question (the CPU benchmark task ``arith``).
ARITH_INSTRUCTION = "Give only the final answer inside \\boxed{}."
# reasoning-gym 0.1.25's own answer-format sentences, replaced by the ones above.
_RG_ZEBRA_SUFFIX = "? Provide only the name of the person as your final answer."
_RG_ARC_SENTENCE = "Your final answer should be just the test output grid itself."

#: Default per-item CPU-time limit in seconds (zebra 6x6 items take 0.5-5 s of CPU).
DEFAULT_ITEM_TIMEOUT_S = 30.0
_MAX_CONSECUTIVE_SKIPS = 5


class ItemGenerationError(RuntimeError):
    """A level's generator failed or timed out on too many items (the config is likely unsatisfiable)."""


def render_prompt(question: str) -> str:
    """The question inside :data:`TINYZERO_TEMPLATE` (the model's full input text)."""
    return TINYZERO_TEMPLATE.format(question=question)


def bare_arith_prompt(item: Mapping[str, Any]) -> str:
    """The bare prompt of a reasoning-gym ``basic_arithmetic`` item: its expression without spaces,
    then ``=`` (``"32 - 15"`` -> ``"32-15="``); the testbed's format (docs/testbed.md)."""
    return "".join(str(item["metadata"]["expression"]).split()) + "="


def derive_seed(seed: int, task_name: str, level: int, split: str) -> int:
    """Stable 63-bit reasoning-gym seed for one (task, level, split): first 8 bytes of
    ``sha256(f"sec.tasks/{task_name}/{split}/L{level}/{seed}")`` shifted right by one bit."""
    digest = hashlib.sha256(f"sec.tasks/{task_name}/{split}/L{int(level)}/{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def build_question(generator: str, item: Mapping[str, Any]) -> str:
    """The paper's question text for one reasoning-gym item (SEC.md §2).

    * countdown: rebuilt from ``metadata.numbers`` / ``metadata.target`` (:data:`COUNTDOWN_QUESTION`).
    * zebra_puzzles: reasoning-gym's puzzle text with its trailing "? Provide only the name ..."
      (which also doubles the question mark) replaced by ``?`` + :data:`ZEBRA_INSTRUCTION`.
    * arc_1d: reasoning-gym's text (3 examples, test input) with its own final-answer sentence
      removed and :data:`ARC_INSTRUCTION` appended after the test input.
    * basic_arithmetic (task ``arith``, not in the paper): reasoning-gym's ``Calculate 4 - 1.`` +
      :data:`ARITH_INSTRUCTION`.

    Raises:
        ValueError: unsupported generator.
    """
    if generator == "countdown":
        md = item["metadata"]
        numbers = "[" + ", ".join(str(int(x)) for x in md["numbers"]) + "]"
        return COUNTDOWN_QUESTION.format(numbers=numbers, target=int(md["target"]))
    if generator == "zebra_puzzles":
        text = str(item["question"]).rstrip()
        text = text.removesuffix(_RG_ZEBRA_SUFFIX).rstrip()
        if not text.endswith("?"):
            text += "?"
        return f"{text} {ZEBRA_INSTRUCTION}"
    if generator == "arc_1d":
        text = str(item["question"]).replace(" " + _RG_ARC_SENTENCE, "").replace(_RG_ARC_SENTENCE, "")
        return f"{text.rstrip()}\n\n{ARC_INSTRUCTION}"
    if generator == "basic_arithmetic":
        return f"{str(item['question']).rstrip()} {ARITH_INSTRUCTION}"
    raise ValueError(f"unsupported generator {generator!r}; supported: {list(SUPPORTED_GENERATORS)}")


def _answer_payload(generator: str, item: Mapping[str, Any]) -> dict[str, Any]:
    """What :func:`sec.tasks.rewards.is_correct` needs: the reference ``answer`` and the generator,
    plus ``numbers``/``target`` (countdown) or the metadata the reasoning-gym scorer reads."""
    payload: dict[str, Any] = {"generator": generator, "answer": str(item["answer"])}
    if generator == "countdown":
        payload["numbers"] = [int(x) for x in item["metadata"]["numbers"]]
        payload["target"] = int(item["metadata"]["target"])
    # zebra_puzzles / arc_1d scorers read only entry["answer"] in reasoning-gym 0.1.25.
    return payload


# ----------------------------------------------------------------------------------------------------
# time-bounded raw generation


class _ItemTimeout(Exception):
    """Raised by the SIGPROF handler inside an item's generation: it ran past its CPU-time bound."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _ItemTimeout


@contextlib.contextmanager
def _alarm_handler() -> Iterator[None]:
    """Install the SIGPROF handler (main thread only); restores the previous handler and timer."""
    previous = signal.signal(signal.SIGPROF, _on_alarm)
    old_timer = signal.setitimer(signal.ITIMER_PROF, 0)
    started = time.process_time()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
        if old_timer[0] > 0:
            remaining = max(old_timer[0] - (time.process_time() - started), 1e-3)
            signal.setitimer(signal.ITIMER_PROF, remaining, old_timer[1])


def _timed_item(dataset: Any, idx: int, timeout_s: float) -> tuple[dict[str, Any] | None, str]:
    """``dataset[idx]`` under the CPU-time interval timer; (item, "") or (None, reason). Needs
    _alarm_handler (or the worker's SIGPROF handler)."""
    signal.setitimer(signal.ITIMER_PROF, timeout_s)
    try:
        try:
            item = dataset[idx]
        finally:  # an alarm firing in here is still caught below
            signal.setitimer(signal.ITIMER_PROF, 0)
    except _ItemTimeout:
        return None, f"timed out after {timeout_s:g} s of CPU time"
    except Exception as exc:  # reasoning-gym raises e.g. ValueError when it gives up on an item
        return None, f"{type(exc).__name__}: {exc}"
    return item, ""


def _make_dataset(generator: str, level_kwargs: Mapping[str, Any], seed: int) -> Any:
    import reasoning_gym

    # size only bounds reasoning-gym's iteration; items are addressed by index.
    return reasoning_gym.create_dataset(generator, seed=seed, size=2**31 - 1, **dict(level_kwargs))


def _worker_main(
    conn: Any,
    inherited: list[Any],
    generator: str,
    level_kwargs: dict[str, Any],
    seed: int,
    timeout_s: float,
) -> None:
    """Worker process: answer ``(start, count)`` requests with timed items until EOF / ``None``.

    ``inherited`` are the parent-side pipe ends a forked child got a copy of; closing them lets the
    worker see EOF (and exit) when the parent closes its end or dies.
    """
    for other in inherited:
        other.close()
    signal.signal(signal.SIGPROF, _on_alarm)
    dataset = _make_dataset(generator, level_kwargs, seed)
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        start, count = request
        try:
            conn.send([(i, *_timed_item(dataset, i, timeout_s)) for i in range(start, start + count)])
        except OSError:  # parent went away
            return


def _iter_raw(
    generator: str,
    level_kwargs: Mapping[str, Any],
    seed: int,
    timeout_s: float,
    workers: int,
    chunk: int,
    expected: int,
    start: int = 0,
) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """Yield ``(index, item | None, failure reason)`` for indices ``start``, ``start + 1``, ... in
    order, lazily.

    Inline with a main-thread CPU-time timer when ``workers <= 1`` and we are on the main thread;
    otherwise in worker processes (each times its items with its own SIGPROF timer).

    Dispatch is dynamic: each worker has a private pipe and up to two chunks of ``chunk`` indices in
    flight, and whichever worker answers first gets the next chunk, so a worker that drew slow items
    (zebra items take 0.1-2 s) does not hold the others back. Results are reordered by index in a
    buffer of at most ``4 * workers`` chunks. Chunks are only submitted up to index ``expected``
    (what the caller needs if nothing is skipped); once those are consumed, more are submitted on
    demand, so the last chunks do not generate items nobody reads. Private pipes (not a shared
    queue) let closing the iterator kill busy workers without deadlocking
    (``multiprocessing.Pool.terminate`` can). Workers are forked where possible: ``spawn`` would
    re-run an unguarded ``__main__`` script in every worker. No result within
    ``2 * chunk * timeout_s + 60`` seconds, or a dead worker, raises :class:`ItemGenerationError`.
    """
    on_main = threading.current_thread() is threading.main_thread()
    if workers <= 1 and on_main:
        dataset = _make_dataset(generator, level_kwargs, seed)
        with _alarm_handler():
            idx = start
            while True:
                item, reason = _timed_item(dataset, idx, timeout_s)
                yield idx, item, reason
                idx += 1
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    n_procs = max(1, workers)
    patience = 2 * chunk * timeout_s + 60
    window = 4 * n_procs * chunk  # reorder bound: submitted - yielded indices
    procs: list[Any] = []
    conns: list[Any] = []
    try:
        for _ in range(n_procs):
            parent_conn, child_conn = ctx.Pipe()
            proc = ctx.Process(
                target=_worker_main,
                args=(
                    child_conn,
                    [parent_conn, *conns] if method == "fork" else [],
                    generator,
                    dict(level_kwargs),
                    seed,
                    timeout_s,
                ),
                daemon=True,
            )
            proc.start()
            child_conn.close()
            procs.append(proc)
            conns.append(parent_conn)
        in_flight = [0] * n_procs
        buffer: dict[int, list[Any]] = {}
        next_start = start  # first index not yet submitted
        next_yield = start  # first index not yet yielded
        limit = start + max(expected, 1)  # submit up to this index; raised on demand

        def fill(worker: int) -> None:
            nonlocal next_start
            while in_flight[worker] < 2 and next_start < limit and next_start - next_yield < window:
                conns[worker].send((next_start, chunk))
                in_flight[worker] += 1
                next_start += chunk

        while True:
            if next_yield in buffer:
                results = buffer.pop(next_yield)
                next_yield += len(results)
                yield from results
                continue
            if not any(in_flight) and next_start >= limit:
                limit = next_start + chunk * n_procs  # items were skipped: the caller wants more
            for worker in range(n_procs):
                fill(worker)
            ready = mp_connection.wait([conns[w] for w in range(n_procs) if in_flight[w]], timeout=patience)
            if not ready:
                raise ItemGenerationError(f"{generator}: no result from a generator worker in {patience:g} s")
            for conn in ready:
                worker = conns.index(conn)
                try:
                    results = conn.recv()
                except (EOFError, OSError):
                    raise ItemGenerationError(
                        f"{generator}: a generator worker died (exit code {procs[worker].exitcode})"
                    ) from None
                in_flight[worker] -= 1
                buffer[results[0][0]] = results
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.join(timeout=10)
        for conn in conns:
            conn.close()


def default_workers(n: int) -> int:
    """Worker processes for ``n`` items: 1 (inline) below 256 items, else the usable CPUs (max 16)."""
    if n < 256:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(16, cpus))


def generate_items(
    task_name: str,
    generator: str,
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
    prompt_style: str = "tinyzero",
) -> list[dict[str, Any]]:
    """Generate ``n`` problem records of one (task, level, split).

    Items come from ``reasoning_gym.create_dataset(generator, seed=derive_seed(seed, task_name,
    level, split), **level_kwargs)`` at indices 0, 1, 2, ...; an index is skipped (and the next one
    used) when generating it raises or exceeds ``item_timeout_s`` seconds (warning logged with the
    count) or when its question is in ``exclude_questions`` (used to drop train items equal to a
    test item; count logged). Output is deterministic given the arguments (unless items time out,
    which depends on machine speed; those are reported).

    Args:
        task_name: record ``task`` field and seed/ID component (e.g. ``"countdown"``).
        generator: reasoning-gym dataset name, one of ``countdown``, ``zebra_puzzles``, ``arc_1d``,
            ``basic_arithmetic``.
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
        prompt_style: ``tinyzero`` (the paper's question in :data:`TINYZERO_TEMPLATE`) or ``bare``
            (``basic_arithmetic`` only: question and prompt are the expression without spaces and
            ``=``, e.g. ``32-15=``, :func:`bare_arith_prompt`; the testbed's task ``arith_bare``).

    Returns:
        ``n`` records with fields ``id`` (``"{task}/{split}/L{level}/{k:05d}"``), ``task``, ``level``,
        ``split``, ``question``, ``prompt``, ``answer`` (JSON string), ``metadata`` (JSON string).

    Raises:
        ValueError: unsupported generator, bad split, non-positive ``n``/timeout.
        ItemGenerationError: more than ``max(5, n // 20)`` items (or 5 in a row) failed or timed out.
    """
    if generator not in SUPPORTED_GENERATORS:
        raise ValueError(f"unsupported generator {generator!r}; supported: {list(SUPPORTED_GENERATORS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not item_timeout_s > 0:
        raise ValueError(f"item_timeout_s must be positive, got {item_timeout_s!r}")
    excluded = set(exclude_questions)
    rg_seed = derive_seed(seed, task_name, level, split)
    n_workers = default_workers(n) if workers is None else int(workers)
    # small chunks balance uneven item times; 64 caps the per-message overhead on fast generators
    chunk = max(1, min(64, n // (16 * max(1, n_workers))))
    max_skips = max(5, n // 20)

    resume = resume or {}
    records: list[dict[str, Any]] = list(resume.get("records", []))[:n]
    skipped: list[tuple[int, str]] = [(int(i), str(r)) for i, r in resume.get("skipped", [])]
    consecutive = 0
    dropped = int(resume.get("dropped", 0))
    start = int(resume.get("next_index", 0))
    earlier_s = float(resume.get("seconds", 0.0))
    t0 = time.perf_counter()
    desc = f"{task_name} {split} L{level}"

    def state(next_index: int) -> dict[str, Any]:
        return {
            "records": records,
            "next_index": next_index,
            "skipped": skipped,
            "dropped": dropped,
            "seconds": earlier_s + time.perf_counter() - t0,
        }

    if start:
        log.info("%s: resuming at %d records (reasoning-gym index %d)", desc, len(records), start)
    raw = _iter_raw(generator, level_kwargs, rg_seed, float(item_timeout_s), n_workers, chunk, n - len(records), start)
    with tqdm(total=n, initial=len(records), desc=desc, unit="item", disable=not progress, leave=False) as bar:
        try:
            for idx, item, reason in raw if len(records) < n else ():
                if item is None:
                    skipped.append((idx, reason))
                    consecutive += 1
                    log.warning("%s: skipped reasoning-gym item %d (%s)", desc, idx, reason)
                    if len(skipped) > max_skips or consecutive >= _MAX_CONSECUTIVE_SKIPS:
                        raise ItemGenerationError(
                            f"{desc}: {generator} with {dict(level_kwargs)} failed on {len(skipped)} items "
                            f"({consecutive} in a row; last: {reason}); the level config is probably "
                            "unsatisfiable for reasoning-gym"
                        )
                    continue
                consecutive = 0
                question = bare_arith_prompt(item) if prompt_style == "bare" else build_question(generator, item)
                if question in excluded:
                    dropped += 1
                    continue
                k = len(records)
                records.append(
                    {
                        "id": f"{task_name}/{split}/L{int(level)}/{k:05d}",
                        "task": task_name,
                        "level": int(level),
                        "split": split,
                        "question": question,
                        "prompt": question if prompt_style == "bare" else render_prompt(question),
                        "answer": json.dumps(_answer_payload(generator, item), sort_keys=True),
                        "metadata": json.dumps(item.get("metadata") or {}, sort_keys=True, default=str),
                    }
                )
                bar.update(1)
                if len(records) >= n:
                    break
                if on_progress is not None and len(records) % progress_every == 0:
                    on_progress(state(idx + 1))
        finally:
            raw.close()
    elapsed = earlier_s + time.perf_counter() - t0
    if skipped:
        log.warning("%s: %d reasoning-gym items skipped (failed/timed out): %s", desc, len(skipped), skipped)
    if dropped:
        log.info("%s: dropped %d items whose question equals a test question", desc, dropped)
    log.info(
        "%s: %d items in %.1f s (%.2f ms/item, %d worker(s))",
        desc,
        n,
        elapsed,
        1000 * elapsed / n,
        n_workers,
    )
    if stats is not None:
        stats.update(skipped=len(skipped), dropped=dropped, seconds=elapsed, workers=n_workers)
    return records
