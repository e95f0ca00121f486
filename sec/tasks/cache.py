"""The on-disk cache every task's data set goes through: ``<cache_dir>/<name>/<key>.parquet``
with a manifest (``.json``) beside it, written atomically, generated once under a file lock
when several processes (sweep jobs) want the same set, and checked against its checksum.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from sec.tasks.records import RECORD_COLUMNS

__all__ = [
    "Partial",
    "atomic_write",
    "cached_or_build",
    "check_cached",
    "exclusive",
    "manifest_path",
    "read_cache",
    "set_path",
    "sha256",
    "write_set",
]

log = logging.getLogger("sec.tasks")


def set_path(cache_dir: str | Path, name: str, key: str) -> Path:
    """``<cache_dir>/<name>/<key>.parquet``: where a task's set with that cache key lives."""
    return Path(cache_dir) / str(name) / f"{key}.parquet"


def manifest_path(parquet: Path) -> Path:
    """The manifest beside a cached parquet: the hashed config (generator and library versions,
    levels, sizes, seed, prompts), counts, seeds, skips and checksums."""
    return parquet.with_suffix(".json")


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp)`` then rename ``tmp`` to ``path``: readers see the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
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


def read_cache(path: Path, name: str) -> pd.DataFrame | None:
    """The cached records at ``path``; ``None`` when absent or unreadable (then regenerated)."""
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


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cached_or_build(
    path: Path, name: str, build: Callable[[], tuple[pd.DataFrame, dict[str, Any]]]
) -> tuple[pd.DataFrame, bool]:
    """The set at ``path``, or ``build()``'s ``(frame, manifest)`` written there (under the
    set's lock, re-checking the cache after waiting for it). Returns ``(frame, built)``."""
    df = read_cache(path, name)
    if df is not None:
        return df, False
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(path.with_suffix(".lock")):
        df = read_cache(path, name)  # another process may have written it meanwhile
        if df is not None:
            return df, False
        df, manifest = build()
        write_set(path, df, manifest)
    return df, True


def write_set(path: Path, df: pd.DataFrame, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Write the records, then their manifest (with ``rows`` and the parquet's ``sha256`` added);
    returns the manifest written."""
    atomic_write(path, lambda p: df.to_parquet(p, index=False))
    full = {**manifest, "rows": len(df), "sha256": sha256(path)}
    text = json.dumps(full, sort_keys=True, indent=1, default=str)
    atomic_write(manifest_path(path), lambda p: p.write_text(text))
    return full


def check_cached(path: Path) -> str | None:
    """``"ok"`` or ``"corrupt: ..."`` for a set with a manifest; ``None`` when either file is missing."""
    if not (path.exists() and manifest_path(path).exists()):
        return None
    if sha256(path) != json.loads(manifest_path(path).read_text()).get("sha256"):
        return f"corrupt: {path} does not match the sha256 of its manifest"
    return "ok"


class Partial:
    """The saved progress of one shard (``<stem>.parquet`` records + ``<stem>.json`` state), so
    that a killed generation of a 10,000-item level resumes within the level. The JSON is written
    after the parquet and names its row count; a parquet that is ahead of it is cut back."""

    def __init__(self, stem: Path) -> None:
        self.records = stem.with_name(stem.name + ".parquet")
        self.state = stem.with_name(stem.name + ".json")

    def save(self, state: Mapping[str, Any]) -> None:
        frame = pd.DataFrame(state["records"], columns=list(RECORD_COLUMNS))
        atomic_write(self.records, lambda p: frame.to_parquet(p, index=False))
        meta = {k: v for k, v in state.items() if k != "records"} | {"rows": len(frame)}
        atomic_write(self.state, lambda p: p.write_text(json.dumps(meta)))

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
