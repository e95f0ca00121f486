"""Load runs into tidy pandas frames: run dirs (a single run or Hydra multirun trees) or a wandb
project through the wandb API.

A run dir is what ``python -m sec.launch`` writes (sec/workspace.py): ``config.yaml`` (the
resolved config), ``metrics.jsonl`` (sec/metrics.py: train and eval records), ``done.json``
when finished, and for a Hydra job ``.hydra/`` and ``launch.log``. Every run found is either
loaded or listed in :attr:`Runs.skipped` with the reason (no config, no metrics, no train
record, unfinished when ``finished_only``), never raised. Unfinished runs are loaded with
``done = False`` (their evaluations up to the step they reached count). A run whose ``failed.json``
(sec/workspace.py: the run raised) is present is named with that error: in the skip reason when it
has no train record, in :attr:`Runs.failed` when it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from sec.metrics import read_metrics
from sec.rundir import FAILED

log = logging.getLogger("analysis.load")

#: config values copied onto every row (dotted paths into config.yaml)
CONFIG_COLUMNS = {
    "task": "task.name",
    "run_task": "task.name",
    "model": "model.name",
    "algorithm": "algorithm.name",
    "curriculum": "curriculum.name",
    "backend": "backend.name",
    "seed": "seed",
    "tag": "tag",
    "train_steps": "train.steps",
    "alpha": "curriculum.alpha",
    "tau": "curriculum.tau",
}

#: config keys that do not change a run's result: left out of :func:`config_id` and of the
#: "cell mixes different configs" check of the tables (seeds are what tables average over)
IGNORED_CONFIG_KEYS = ("seed", "paths.", "logger.", "eval.batch_size", "backend.num_threads", "targets.")


@dataclass
class Runs:
    """Tidy frames of a set of runs.

    ``train``: one row per (run, step) with the config columns (:data:`CONFIG_COLUMNS`),
    ``run``, ``done``, ``config_id``, ``dataset_level_mean`` and every train metric.
    ``eval``: one row per (run, step, task, split) with the same columns and ``pass@1``;
    here ``task`` is the evaluated task (a component of a mix) and ``run_task`` the run's.
    ``skipped``: (run, reason) of every run left out. ``configs``: run -> resolved config.
    ``failed``: run -> the error of its ``failed.json``, for loaded runs that failed after their
    first step.
    """

    train: pd.DataFrame
    eval: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def unfinished(self) -> list[tuple[str, int]]:
        """(run, last train step) of the loaded runs without ``done.json``."""
        if self.train.empty:
            return []
        t = self.train[~self.train["done"].astype(bool)]
        return [(str(r), int(s)) for r, s in t.groupby("run")["step"].max().items()]

    def __add__(self, other: Runs) -> Runs:
        return Runs(
            pd.concat([self.train, other.train], ignore_index=True),
            pd.concat([self.eval, other.eval], ignore_index=True),
            self.skipped + other.skipped,
            {**self.configs, **other.configs},
            {**self.failed, **other.failed},
        )


def _get(cfg: Mapping[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def flatten_config(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists become tuples (hashable)."""
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten_config(v, key + "."))
        else:
            out[key] = tuple(v) if isinstance(v, list) else v
    return out


def result_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The flat config without :data:`IGNORED_CONFIG_KEYS` (what two seeds of a cell share)."""
    return {
        k: v for k, v in flatten_config(cfg).items() if not any(k == p or k.startswith(p) for p in IGNORED_CONFIG_KEYS)
    }


def config_id(cfg: Mapping[str, Any]) -> str:
    """Short hash of :func:`result_config`: runs with the same id differ only in seed (and
    settings that do not change results)."""
    blob = json.dumps(result_config(cfg), sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def dataset_level_mean(cfg: Mapping[str, Any]) -> float | None:
    """Mean difficulty level of the training set a config generates (Figure 3's dashed line):
    the training levels weighted by their problem counts (``task.train_per_level``, an int
    for equal counts or a ``{level: count}`` mapping). None without numeric levels."""
    task = cfg.get("task") or {}
    levels = task.get("train_levels")
    if not levels:
        return None
    per_level = task.get("train_per_level")
    try:
        lv = [float(x) for x in levels]
        if isinstance(per_level, Mapping):
            w = [float(per_level.get(x, per_level.get(str(x), 0))) for x in levels]
        else:
            w = [1.0] * len(lv)
    except (TypeError, ValueError):
        return None
    total = sum(w)
    return sum(a * b for a, b in zip(lv, w, strict=True)) / total if total > 0 else None


def find_runs(roots: Iterable[str | Path]) -> list[Path]:
    """Every run dir under the given roots (a root may itself be a run dir): dirs with a
    ``metrics.jsonl`` and Hydra job dirs (``.hydra/``) that never wrote one (failed jobs)."""
    found: set[Path] = set()
    for root in roots:
        root = Path(root)
        candidates = {p.parent for p in root.rglob("metrics.jsonl")}
        candidates |= {p.parent for p in root.rglob(FAILED)}
        candidates |= {p.parent for p in root.rglob(".hydra") if p.is_dir()}
        # not the engines' own dirs inside a run (checkpoints, wandb files, verl's Hydra record
        # under <run>/verl/hydra/.hydra): nothing nested inside another run dir
        runs = {c for c in candidates if not {"checkpoints", "wandb", ".hydra"} & set(c.relative_to(root).parts)}
        found.update(c for c in runs if not any(d != c and d in c.parents for d in runs))
    return sorted(found)


def failure(run: Path) -> str | None:
    """The error a run's ``failed.json`` records (``"<type>: <message>"``, sec/workspace.py), or
    None when the run has no such file; an unreadable file gives a one-line note instead."""
    path = run / FAILED
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
        error = info.get("error") if isinstance(info, dict) else None
    except (OSError, json.JSONDecodeError) as e:
        return f"unreadable {FAILED} ({e.__class__.__name__})"
    return str(error or f"{FAILED} without an error")


def _last_error(run: Path) -> str:
    """The error of ``failed.json``, else the last line of the job log that names an error, for
    the skip reason."""
    error = failure(run)
    if error is not None:
        return f"; failed.json: {error}"
    logf = run / "launch.log"
    if not logf.exists():
        return ""
    lines = [ln.strip() for ln in logf.read_text(errors="replace").splitlines() if "Error" in ln or "error" in ln]
    return f"; launch.log: {lines[-1][-200:]}" if lines else ""


def _rows(run: str, cfg: Mapping[str, Any], records: Iterable[Mapping[str, Any]], done: bool):
    meta = {col: _get(cfg, path) for col, path in CONFIG_COLUMNS.items()}
    meta.update(run=run, done=done, config_id=config_id(cfg), dataset_level_mean=dataset_level_mean(cfg))
    train, evals = [], []
    for r in records:
        (train if r.get("kind") == "train" else evals).append({**meta, **r})
    return train, evals


def load_runs(roots: Iterable[str | Path], *, finished_only: bool = False) -> Runs:
    """Read every run under ``roots``.

    Args:
        roots: run dirs or dirs holding them (a Hydra multirun dir, ``multirun/``, ...).
        finished_only: skip runs without ``done.json`` (else they are loaded, ``done=False``).

    Returns:
        :class:`Runs` (frames empty when nothing loads; the reasons are in ``skipped``).
    """
    train_rows, eval_rows, skipped, configs = [], [], [], {}
    failed: dict[str, str] = {}
    for run in find_runs(roots):
        if not (run / "config.yaml").exists():
            skipped.append((str(run), f"no config.yaml: failed before its config was written{_last_error(run)}"))
            continue
        try:
            cfg = yaml.safe_load((run / "config.yaml").read_text())
            if not isinstance(cfg, dict):
                raise yaml.YAMLError("not a mapping")
        except (OSError, yaml.YAMLError) as e:
            skipped.append((str(run), f"no readable config.yaml ({e.__class__.__name__})"))
            continue
        if not (run / "metrics.jsonl").exists():
            skipped.append((str(run), f"no metrics.jsonl: failed or stopped before its first step{_last_error(run)}"))
            continue
        records = read_metrics(run / "metrics.jsonl")
        if not any(r.get("kind") == "train" for r in records):
            skipped.append((str(run), f"no train record in metrics.jsonl{_last_error(run)}"))
            continue
        done = (run / "done.json").exists()
        if finished_only and not done:
            last = max(int(r["step"]) for r in records if r.get("kind") == "train")
            skipped.append((str(run), f"unfinished (no done.json), last step {last}"))
            continue
        t, e = _rows(str(run), cfg, records, done)
        train_rows += t
        eval_rows += e
        configs[str(run)] = cfg
        error = None if done else failure(run)
        if error is not None:
            failed[str(run)] = error
    for run, why in skipped:
        log.warning("skipped %s: %s", run, why)
    for run, error in failed.items():
        log.warning("failed %s: %s (its records so far are loaded)", run, error)
    return Runs(pd.DataFrame(train_rows), pd.DataFrame(eval_rows), skipped, configs, failed)


# --------------------------------------------------------------------------- wandb


def records_from_wandb_history(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Turn a wandb run's history back into metrics.jsonl records: the inverse of
    :meth:`sec.metrics.MetricsWriter._wandb_view`, which logs train metrics under their own
    names and each eval record as ``eval/<task>/<split>/pass@1``, all at ``step`` (wandb's
    ``_step``; logs of one step share a history row).

    Returns:
        train records (``kind: train``, every non-``_`` non-``eval/`` key) and eval records
        (``kind: eval``, ``task``, ``split``, ``pass@1``; wandb has no ``n_problems``).
    """
    out: list[dict[str, Any]] = []
    for row in rows:
        if row.get("_step") is None:
            continue
        step = int(row["_step"])
        present = {k: v for k, v in row.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
        train = {k: v for k, v in present.items() if not k.startswith(("_", "eval/"))}
        if train:
            out.append({"step": step, "kind": "train", **train})
        for k, v in present.items():
            parts = k.split("/")
            if len(parts) == 4 and parts[0] == "eval" and parts[3] == "pass@1":
                out.append({"step": step, "kind": "eval", "task": parts[1], "split": parts[2], "pass@1": float(v)})
    return out


def load_wandb(path: str, *, filters: Mapping[str, Any] | None = None, api: Any = None) -> Runs:
    """Read the runs of a wandb project (``entity/project``) through the wandb API: the
    config each run was started with (``logger=wandb`` stores the resolved config) and its
    history. Needs network access and a wandb login (``WANDB_API_KEY``).

    Args:
        path: ``entity/project``.
        filters: wandb API run filters (MongoDB syntax), e.g. ``{"config.tag": "table1"}``.
        api: a ``wandb.Api`` instance (default: a new one).

    Returns:
        :class:`Runs` with ``run = "wandb:<entity>/<project>/<id>"`` and ``done`` = the wandb
        run state is ``finished``; runs without config or train history are skipped.
    """
    if api is None:
        import wandb

        api = wandb.Api()
    train_rows, eval_rows, skipped, configs = [], [], [], {}
    for wrun in api.runs(path, filters=dict(filters or {})):
        name = f"wandb:{path}/{wrun.id}"
        cfg = dict(wrun.config or {})
        if not cfg.get("task"):
            skipped.append((name, "no run config in wandb (not started by sec.launch?)"))
            continue
        records = records_from_wandb_history(wrun.scan_history())
        if not any(r["kind"] == "train" for r in records):
            skipped.append((name, f"no train history (state {wrun.state})"))
            continue
        t, e = _rows(name, cfg, records, wrun.state == "finished")
        train_rows += t
        eval_rows += e
        configs[name] = cfg
    for run, why in skipped:
        log.warning("skipped %s: %s", run, why)
    return Runs(pd.DataFrame(train_rows), pd.DataFrame(eval_rows), skipped, configs)
