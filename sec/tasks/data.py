"""Build, cache and load any task's train/test problems: the entry points the runs, the data
CLI (``python -m sec.data``) and the SLURM shard jobs call. Each dispatches to the config's task
(:func:`sec.tasks.registry.task_for`): the task's module defines how its records are made; the
cache layout and record schema are shared (:mod:`sec.tasks.cache`, :mod:`sec.tasks.records`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from sec.tasks.cache import manifest_path, set_path
from sec.tasks.puzzle import DATA_FORMAT_VERSION
from sec.tasks.records import RECORD_COLUMNS
from sec.tasks.registry import task_for

__all__ = [
    "DATA_FORMAT_VERSION",
    "RECORD_COLUMNS",
    "cache_key",
    "cache_path",
    "check_task_data",
    "generate_shard",
    "load_task_data",
    "manifest_path",
    "normalize_task_config",
    "shard_plan",
]


def normalize_task_config(task_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Validated plain copy of the content-determining task config fields (the task's own rules,
    e.g. levels keyed by int for a levelled task).

    Raises:
        ValueError: unknown task, missing field, bad level or size (one line).
    """
    return task_for(task_cfg).normalize(task_cfg)


def cache_key(task_cfg: Mapping[str, Any]) -> str:
    """16-hex-digit hash of everything that determines the task's records (the task's
    :meth:`~sec.tasks.registry.Task.cache_key`).

    Raises:
        ValueError: invalid config.
    """
    return task_for(task_cfg).cache_key(task_cfg)


def cache_path(task_cfg: Mapping[str, Any], cache_dir: str | Path) -> Path:
    """``<cache_dir>/<name>/<cache_key>.parquet``, where the task's set is cached.

    Raises:
        ValueError: invalid config.
    """
    return set_path(cache_dir, str(task_cfg["name"]), cache_key(task_cfg))


def load_task_data(task_cfg: Mapping[str, Any], cache_dir: str | Path) -> pd.DataFrame:
    """Train + test problem records of one task, built once and cached.

    Args:
        task_cfg: one task's config (``conf/task/<name>.yaml``; a mix's components one by one,
            :func:`sec.workspace.task_components`): ``name``, ``module`` and the task's fields.
        cache_dir: directory of the cache; the file is ``<cache_dir>/<name>/<cache_key>.parquet``.

    Returns:
        DataFrame with :data:`RECORD_COLUMNS`: train rows (by level) then test rows.

    Raises:
        ValueError: invalid config (one line naming the problem).
        sec.tasks.generation.ItemGenerationError: a level's generator keeps failing or timing out.
        sec.tasks.math_data.MathDataError: a Math data set no source provides.
    """
    return task_for(task_cfg).load_data(task_cfg, cache_dir)


def shard_plan(task_cfg: Mapping[str, Any]) -> list[tuple[str, int]]:
    """The (split, level) shards of a task's set in the order they must be made (``[]`` for a
    task built in one piece, e.g. Math).

    Raises:
        ValueError: invalid config.
    """
    return task_for(task_cfg).shard_plan(task_cfg)


def generate_shard(task_cfg: Mapping[str, Any], cache_dir: str | Path, split: str, level: int) -> int:
    """Generate one (split, level) shard of a task's set into the shard directory that
    :func:`load_task_data` resumes from (one SLURM array task of ``python -m sec.data --slurm``).

    Returns:
        rows in the shard (0 when the whole set was already cached).

    Raises:
        ValueError: invalid config, split or level.
        FileNotFoundError: a train shard is asked for before every test shard exists.
    """
    return task_for(task_cfg).generate_shard(task_cfg, cache_dir, split, level)


def check_task_data(task_cfg: Mapping[str, Any], cache_dir: str | Path) -> str:
    """State of a task's cached data: ``"ok"``, ``"missing"``, ``"corrupt: ..."`` (checksum or
    row count differs from the manifest) or ``"stale: ..."`` (only data generated with another
    generator or data-format version exists for this config).

    Raises:
        ValueError: invalid config.
    """
    return task_for(task_cfg).check_data(task_cfg, cache_dir)
