"""Build, cache and load a puzzle task's train/test problems (SEC.md §2).

A task config (``conf/task/*.yaml``) names a reasoning-gym generator and maps each difficulty level
to that generator's dataset-config kwargs. :func:`load_task_data` generates ``train_per_level``
items for each train level and ``test_per_level`` items for each test level, and caches them as one
parquet file ``<cache_dir>/<name>/<key>.parquet`` whose ``key`` hashes everything that determines the
content (see :func:`cache_key`), so a changed config never reuses a stale file.

Record schema (one parquet row, :data:`RECORD_COLUMNS`):

=========== ====== ==================================================================================
``id``      str    unique, ``"{task}/{split}/L{level}/{k:05d}"``
``task``    str    task name (``cfg.name``)
``level``   int    difficulty level, 1 = easiest
``split``   str    ``"train"`` or ``"test"``
``question`` str   the paper's question text (:func:`sec.tasks.puzzles.build_question`)
``prompt``  str    ``question`` rendered in the TinyZero template (the model input)
``answer``  str    JSON object for :func:`sec.tasks.rewards.is_correct`
``metadata`` str   JSON of reasoning-gym's item metadata (may be ``"{}"``)
=========== ====== ==================================================================================
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sec.tasks import puzzles
from sec.tasks.rewards import SUPPORTED_GENERATORS

__all__ = [
    "DATA_FORMAT_VERSION",
    "RECORD_COLUMNS",
    "cache_key",
    "check_task_data",
    "generate_shard",
    "load_task_data",
    "manifest_path",
    "normalize_task_config",
    "shard_plan",
]

log = logging.getLogger("sec.tasks")

#: Bump when the record layout or generation logic changes (invalidates every cache).
DATA_FORMAT_VERSION = 2
RECORD_COLUMNS: tuple[str, ...] = ("id", "task", "level", "split", "question", "prompt", "answer", "metadata")
#: ``task.prompt_style``: the paper's TinyZero prompt, or the testbed's bare ``32-15=`` (arithmetic only)
PROMPT_STYLES = ("tinyzero", "bare")
_REQUIRED = (
    "name",
    "generator",
    "levels",
    "train_levels",
    "test_levels",
    "train_per_level",
    "test_per_level",
    "seed",
)


def _plain(obj: Any) -> Any:
    """Mappings/sequences (OmegaConf containers included) -> dicts/lists of plain values."""
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
        return [_plain(v) for v in obj]
    return obj


def _as_level(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{what}: level {value!r} is not an int")
    try:
        level = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: level {value!r} is not an int") from None
    if str(level) != str(value).strip():
        raise ValueError(f"{what}: level {value!r} is not an int")
    return level


def _positive_int(cfg: Mapping[str, Any], key: str, name: str) -> int:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"task {name!r}: {key} must be a positive int, got {value!r}")
    return value


def normalize_task_config(task_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Validated plain copy of the content-determining task config fields (levels keyed by int).

    Raises:
        ValueError: missing field, unknown generator, bad/missing level, non-positive size, or level
            kwargs that reasoning-gym's dataset config rejects.
    """
    if not isinstance(task_cfg, Mapping):
        raise ValueError(f"task config must be a mapping, got {type(task_cfg).__name__}")
    missing = [k for k in _REQUIRED if k not in task_cfg]
    if missing:
        raise ValueError(f"task config is missing field(s) {missing}")
    name = task_cfg["name"]
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"task name must be a non-empty str without '/', got {name!r}")
    generator = task_cfg["generator"]
    if generator not in SUPPORTED_GENERATORS:
        raise ValueError(f"task {name!r}: unknown generator {generator!r}; supported: {list(SUPPORTED_GENERATORS)}")
    raw_levels = task_cfg["levels"]
    if not isinstance(raw_levels, Mapping) or not raw_levels:
        raise ValueError(f"task {name!r}: levels must be a non-empty mapping level -> kwargs")
    levels: dict[int, dict[str, Any]] = {}
    for key, kwargs in raw_levels.items():
        level = _as_level(key, f"task {name!r} levels")
        if not isinstance(kwargs, Mapping):
            raise ValueError(f"task {name!r}: level {level} kwargs must be a mapping, got {kwargs!r}")
        if level in levels:
            raise ValueError(f"task {name!r}: level {level} defined twice")
        levels[level] = _validate_kwargs(name, generator, level, _plain(kwargs))

    def level_list(key: str) -> list[int]:
        value = task_cfg[key]
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ValueError(f"task {name!r}: {key} must be a list of levels, got {value!r}")
        out = [_as_level(v, f"task {name!r} {key}") for v in value]
        for level in out:
            if level not in levels:
                raise ValueError(f"task {name!r}: {key} has level {level}, missing from levels {sorted(levels)}")
        if len(set(out)) != len(out):
            raise ValueError(f"task {name!r}: {key} repeats a level: {out}")
        return sorted(out)

    train_levels = level_list("train_levels")
    if not train_levels:
        raise ValueError(f"task {name!r}: train_levels is empty")
    test_levels = level_list("test_levels")
    prompt_style = task_cfg.get("prompt_style", "tinyzero")
    if prompt_style not in PROMPT_STYLES or (prompt_style == "bare" and generator != "basic_arithmetic"):
        raise ValueError(
            f"task {name!r}: prompt_style must be one of {PROMPT_STYLES} ('bare' for basic_arithmetic only), "
            f"got {prompt_style!r}"
        )
    seed = task_cfg["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"task {name!r}: seed must be an int, got {seed!r}")
    return {
        "name": name,
        "generator": generator,
        "levels": dict(sorted(levels.items())),
        "train_levels": train_levels,
        "test_levels": test_levels,
        "train_per_level": _positive_int(task_cfg, "train_per_level", name),
        "test_per_level": _positive_int(task_cfg, "test_per_level", name),
        "seed": seed,
        "prompt_style": prompt_style,
    }


def _validate_kwargs(name: str, generator: str, level: int, kwargs: dict[str, Any]) -> dict[str, Any]:
    from reasoning_gym.factory import DATASETS

    for reserved in ("seed", "size"):
        if reserved in kwargs:
            raise ValueError(f"task {name!r}: level {level} must not set {reserved!r} (set by sec.tasks)")
    config_cls = DATASETS[generator][1]
    try:
        config = config_cls(**kwargs)
        config.validate()
    except (TypeError, AssertionError, ValueError) as exc:
        raise ValueError(
            f"task {name!r}: level {level} kwargs {kwargs} rejected by reasoning-gym {generator}: {exc}"
        ) from None
    return kwargs


def _key_payload(cfg: Mapping[str, Any]) -> dict[str, Any]:
    import reasoning_gym

    return {
        "data_format_version": DATA_FORMAT_VERSION,
        "reasoning_gym": reasoning_gym.__version__,
        "name": cfg["name"],
        "generator": cfg["generator"],
        "levels": {str(k): v for k, v in cfg["levels"].items()},
        "train_levels": cfg["train_levels"],
        "test_levels": cfg["test_levels"],
        "train_per_level": cfg["train_per_level"],
        "test_per_level": cfg["test_per_level"],
        "seed": cfg["seed"],
        "templates": [
            puzzles.TINYZERO_TEMPLATE,
            puzzles.COUNTDOWN_QUESTION,
            puzzles.ZEBRA_INSTRUCTION,
            puzzles.ARC_INSTRUCTION,
            # only where it applies: adding it for every task would change the keys of existing sets
            *([puzzles.ARITH_INSTRUCTION] if cfg["generator"] == "basic_arithmetic" else []),
        ],
        # only where it is not the default, so the keys of existing sets stay the same
        **({"prompt_style": cfg["prompt_style"]} if cfg["prompt_style"] != "tinyzero" else {}),
    }


def _is_math(task_cfg: Any) -> bool:
    return isinstance(task_cfg, Mapping) and task_cfg.get("generator") == "math"


def cache_key(task_cfg: Mapping[str, Any]) -> str:
    """16-hex-digit SHA-256 of the canonical JSON of everything that determines the data: generator,
    levels, train/test levels and sizes, seed, task name, reasoning-gym version,
    :data:`DATA_FORMAT_VERSION` and the prompt texts. Not included: ``item_timeout_s``/``gen_workers``
    (they do not change the items unless items time out, which is logged).

    The Math task (``generator: math``) has its own key (:func:`sec.tasks.math.math_cache_key`).

    Raises:
        ValueError: invalid config (see :func:`normalize_task_config`).
    """
    if _is_math(task_cfg):
        from sec.tasks.math import math_cache_key

        return math_cache_key(task_cfg)
    payload = _key_payload(normalize_task_config(task_cfg))
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Advisory ``flock`` on ``lock_path`` so that concurrent runs sharing a cache (sweep jobs, one
    process per GPU) generate a data set once; the others wait, then read it. No-op without fcntl."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process generating into %s", lock_path.parent)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_cache(path: Path, name: str) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        df = pd.read_parquet(path)
        if tuple(df.columns) != RECORD_COLUMNS:
            raise ValueError(f"columns {list(df.columns)}")
    except Exception as exc:  # unreadable cache: regenerate rather than fail
        log.warning("task %s: cache %s unreadable (%s); regenerating", name, path, exc)
        return None
    log.info("task %s: cache hit %s (%d rows)", name, path, len(df))
    return df


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Partial:
    """The saved progress of one shard (``<stem>.parquet`` records + ``<stem>.json`` state), so
    that a killed generation of a 10,000-item level resumes within the level. The JSON is written
    after the parquet and names its row count; a parquet that is ahead of it is cut back."""

    def __init__(self, stem: Path) -> None:
        self.records = stem.with_name(stem.name + ".parquet")
        self.state = stem.with_name(stem.name + ".json")

    def save(self, state: Mapping[str, Any]) -> None:
        frame = pd.DataFrame(state["records"], columns=list(RECORD_COLUMNS))
        _atomic_write(self.records, lambda p: frame.to_parquet(p, index=False))
        meta = {k: v for k, v in state.items() if k != "records"} | {"rows": len(frame)}
        _atomic_write(self.state, lambda p: p.write_text(json.dumps(meta)))

    def load(self) -> dict[str, Any] | None:
        if not (self.records.exists() and self.state.exists()):
            return None
        try:
            meta = json.loads(self.state.read_text())
            records = pd.read_parquet(self.records).to_dict("records")
            if len(records) < int(meta["rows"]):
                raise ValueError(f"{len(records)} rows, state says {meta['rows']}")
        except Exception as exc:  # unreadable progress: start the shard over
            log.warning("ignoring unreadable partial shard %s (%s)", self.records, exc)
            return None
        return {**meta, "records": records[: int(meta["rows"])]}

    def remove(self) -> None:
        self.records.unlink(missing_ok=True)
        self.state.unlink(missing_ok=True)


def _shard(
    cfg: Mapping[str, Any],
    shard_dir: Path,
    split: str,
    level: int,
    n: int,
    exclude: set[str] | frozenset,
    timeout_s: float,
    workers: int | None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One (split, level) shard: generated into ``shard_dir``, or read back if an earlier
    (interrupted) generation or an array task already wrote it; returns its rows and its
    manifest entry."""
    path = shard_dir / f"{split}-L{level}.parquet"
    stats_path = shard_dir / f"{split}-L{level}.stats.json"  # the generation stats, kept for a read-back
    partial = _Partial(shard_dir / f"{split}-L{level}.partial")
    resume = None if path.exists() else partial.load()
    stats: dict[str, Any] = {"resumed": path.exists() or resume is not None}
    if path.exists():
        rows = pd.read_parquet(path).to_dict("records")
        with contextlib.suppress(OSError, ValueError):  # none from a version without the stats file
            stats.update({k: v for k, v in json.loads(stats_path.read_text()).items() if k != "resumed"})
        log.info("task %s: %s L%d shard read back from %s (resumed)", cfg["name"], split, level, path)
    else:
        shard_dir.mkdir(parents=True, exist_ok=True)  # the progress saves go there too
        rows = puzzles.generate_items(
            cfg["name"], cfg["generator"], level, cfg["levels"][level], n, cfg["seed"], split,
            exclude_questions=exclude, item_timeout_s=timeout_s, workers=workers, stats=stats,
            resume=resume, on_progress=partial.save, prompt_style=cfg["prompt_style"],
        )  # fmt: skip
        frame = pd.DataFrame(rows, columns=list(RECORD_COLUMNS))
        _atomic_write(path, lambda p: frame.to_parquet(p, index=False))
        _atomic_write(stats_path, lambda p: p.write_text(json.dumps(stats)))
        partial.remove()
    entry = {
        "split": split,
        "level": level,
        "rows": len(rows),
        "seed": puzzles.derive_seed(cfg["seed"], cfg["name"], level, split),
        "file": path.name,
        "sha256": _sha256(path),
        **stats,
    }
    return rows, entry


def _generate(
    cfg: Mapping[str, Any], timeout_s: float, workers: int | None, shard_dir: Path
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Generate every (split, level) shard, or read it back if an earlier (interrupted)
    generation already wrote it, and return the frame plus one manifest entry per shard."""
    shard_dir.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []

    def shard(split: str, level: int, n: int, exclude: set[str] | frozenset = frozenset()) -> list[dict[str, Any]]:
        rows, entry = _shard(cfg, shard_dir, split, level, n, exclude, timeout_s, workers)
        entries.append(entry)
        return rows

    test_rows = [r for lv in cfg["test_levels"] for r in shard("test", lv, cfg["test_per_level"])]
    # a train item whose question is also a test question is replaced (never trained on test)
    exclude = {r["question"] for r in test_rows}
    train_rows = [r for lv in cfg["train_levels"] for r in shard("train", lv, cfg["train_per_level"], exclude)]
    df = pd.DataFrame(train_rows + test_rows, columns=list(RECORD_COLUMNS))
    df["level"] = df["level"].astype("int64")
    if df["id"].duplicated().any():  # cannot happen: ids embed split/level/position
        raise AssertionError("duplicate record ids")
    return df, entries


def load_task_data(task_cfg: Mapping[str, Any], cache_dir: str | Path) -> pd.DataFrame:
    """Train + test problem records of one puzzle task, generated once and cached.

    Args:
        task_cfg: ``name``, ``generator`` (``countdown`` | ``zebra_puzzles`` | ``arc_1d``), ``levels``
            (level -> reasoning-gym config kwargs; int or str keys), ``train_levels``, ``test_levels``,
            ``train_per_level``, ``test_per_level``, ``seed``; optional ``item_timeout_s`` (per-item
            generation limit, default 30 s) and ``gen_workers`` (generator processes, default auto).
            Other keys (e.g. ``format_reward``) are ignored.
        cache_dir: directory of the cache; the file is ``<cache_dir>/<name>/<cache_key>.parquet``.

    Returns:
        DataFrame with :data:`RECORD_COLUMNS`: train rows (by level) then test rows (by level).

    A Math config (``generator: math``) is read from its sources instead
    (:func:`sec.tasks.math.load_math_data`).

    Raises:
        ValueError: invalid config (one line naming the problem).
        sec.tasks.puzzles.ItemGenerationError: a level's generator keeps failing or timing out.
        sec.tasks.math.MathDataError: a Math data set no source provides.
    """
    if _is_math(task_cfg):
        from sec.tasks.math import load_math_data

        return load_math_data(task_cfg, cache_dir)
    cfg = normalize_task_config(task_cfg)
    key = cache_key(cfg)
    path = Path(cache_dir) / cfg["name"] / f"{key}.parquet"
    df = _read_cache(path, cfg["name"])
    if df is not None:
        return df
    path.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(path.with_suffix(".lock")):
        df = _read_cache(path, cfg["name"])  # another process may have written it meanwhile
        if df is not None:
            return df
        timeout_s = float(task_cfg.get("item_timeout_s", puzzles.DEFAULT_ITEM_TIMEOUT_S))
        workers = task_cfg.get("gen_workers")
        log.info("task %s: cache miss, generating %s", cfg["name"], path)
        t0 = time.perf_counter()
        shard_dir = path.with_suffix(".shards")
        df, shards = _generate(cfg, timeout_s, None if workers is None else int(workers), shard_dir)
        _atomic_write(path, lambda p: df.to_parquet(p, index=False))
        manifest = {
            **_key_payload(cfg),
            "cache_key": key,
            "rows": len(df),
            "sha256": _sha256(path),
            "skipped_items": sum(int(e.get("skipped", 0)) for e in shards),
            "shards": shards,
            "seconds": time.perf_counter() - t0,
        }
        text = json.dumps(manifest, sort_keys=True, indent=1, default=str)
        _atomic_write(manifest_path(path), lambda p: p.write_text(text))
        shutil.rmtree(shard_dir, ignore_errors=True)  # the combined file now holds every shard
        log.info("task %s: generated %d rows in %.1f s -> %s", cfg["name"], len(df), manifest["seconds"], path)
    return df


def shard_plan(task_cfg: Mapping[str, Any]) -> list[tuple[str, int]]:
    """The (split, level) shards of a task's set, in the order they must be made: every test
    shard, then every train shard (train items equal to a test item are replaced, so the train
    shards read the test shards).

    Raises:
        ValueError: invalid config.
    """
    cfg = normalize_task_config(task_cfg)
    return [("test", lv) for lv in cfg["test_levels"]] + [("train", lv) for lv in cfg["train_levels"]]


def generate_shard(task_cfg: Mapping[str, Any], cache_dir: str | Path, split: str, level: int) -> int:
    """Generate one (split, level) shard of a task's set into the shard directory that
    :func:`load_task_data` resumes from (one SLURM array task of ``python -m sec.data --slurm``);
    a later :func:`load_task_data` assembles the shards into the cached set and its manifest.
    Nothing is done when the shard or the whole set already exists.

    Args:
        task_cfg: as for :func:`load_task_data` (``gen_workers``: generator processes).
        cache_dir: the data cache (``<paths.cache_dir>/data``).
        split: ``"test"`` or ``"train"``.
        level: a level of ``test_levels`` / ``train_levels`` respectively.

    Returns:
        rows in the shard (0 when the whole set was already cached).

    Raises:
        ValueError: invalid config, split or level.
        FileNotFoundError: a train shard is asked for before every test shard exists.
    """
    cfg = normalize_task_config(task_cfg)
    if (split, level) not in shard_plan(cfg):
        raise ValueError(f"task {cfg['name']!r}: no shard ({split!r}, {level}); shards: {shard_plan(cfg)}")
    path = Path(cache_dir) / cfg["name"] / f"{cache_key(cfg)}.parquet"
    if path.exists():
        return 0
    shard_dir = path.with_suffix(".shards")
    exclude: set[str] = set()
    if split == "train":
        for lv in cfg["test_levels"]:
            test_shard = shard_dir / f"test-L{lv}.parquet"
            if not test_shard.exists():
                raise FileNotFoundError(f"{test_shard} missing: the test shards must exist before the train shards")
            exclude |= set(pd.read_parquet(test_shard, columns=["question"])["question"])
    n = cfg["test_per_level"] if split == "test" else cfg["train_per_level"]
    timeout_s = float(task_cfg.get("item_timeout_s", puzzles.DEFAULT_ITEM_TIMEOUT_S))
    workers = task_cfg.get("gen_workers")
    rows, _ = _shard(cfg, shard_dir, split, level, n, exclude, timeout_s, None if workers is None else int(workers))
    return len(rows)


def manifest_path(parquet: Path) -> Path:
    """The manifest beside a cached parquet: the hashed config (generator and reasoning-gym
    versions, levels, sizes, seed, prompts), per-shard counts, seeds, skips and checksums."""
    return parquet.with_suffix(".json")


def check_task_data(task_cfg: Mapping[str, Any], cache_dir: str | Path) -> str:
    """State of a task's cached data: ``"ok"``, ``"missing"``, ``"corrupt: ..."`` (checksum or
    row count differs from the manifest) or ``"stale: ..."`` (only data generated with another
    reasoning-gym or data-format version exists for this config).

    Raises:
        ValueError: invalid config.
    """
    if _is_math(task_cfg):
        path = Path(cache_dir) / str(task_cfg["name"]) / f"{cache_key(task_cfg)}.parquet"
        if not path.exists() or not manifest_path(path).exists():
            return "missing"
        if _sha256(path) != json.loads(manifest_path(path).read_text()).get("sha256"):
            return f"corrupt: {path} does not match the sha256 of its manifest"
        return "ok"
    cfg = normalize_task_config(task_cfg)
    path = Path(cache_dir) / cfg["name"] / f"{cache_key(cfg)}.parquet"
    if path.exists() and manifest_path(path).exists():
        manifest = json.loads(manifest_path(path).read_text())
        if _sha256(path) != manifest.get("sha256"):
            return f"corrupt: {path} does not match the sha256 of its manifest"
        return "ok"
    expected = _key_payload(cfg)
    versions = ("reasoning_gym", "data_format_version")
    for other in sorted(path.parent.glob("*.json")):
        try:
            manifest = json.loads(other.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        same_config = all(manifest.get(k) == v for k, v in expected.items() if k not in versions)
        if same_config and any(manifest.get(k) != expected[k] for k in versions):
            return (
                f"stale: {other.with_suffix('.parquet').name} was generated with reasoning-gym "
                f"{manifest.get('reasoning_gym')} (data format {manifest.get('data_format_version')}), "
                f"installed {expected['reasoning_gym']} (data format {expected['data_format_version']})"
            )
    return "missing"
