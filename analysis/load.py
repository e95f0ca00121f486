"""Load run dirs (a single run or Hydra multirun trees) into tidy pandas frames.

A run dir is any directory holding ``metrics.jsonl`` and ``config.yaml`` (sec/workspace.py).
Runs without metrics, with an unreadable config or without any train record are skipped and
reported, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from sec.metrics import read_metrics

log = logging.getLogger("analysis.load")

#: config values copied onto every row (dotted paths into config.yaml)
CONFIG_COLUMNS = {
    "task": "task.name",
    "model": "model.name",
    "algorithm": "algorithm.name",
    "curriculum": "curriculum.name",
    "backend": "backend.name",
    "seed": "seed",
    "tag": "tag",
}


@dataclass
class Runs:
    """``train``: one row per (run, step); ``eval``: one row per (run, step, split);
    ``skipped``: (run dir, reason) of every run left out."""

    train: pd.DataFrame
    eval: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _get(cfg: dict, dotted: str) -> object:
    node: object = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def find_runs(roots: Iterable[str | Path]) -> list[Path]:
    """Every run dir under the given roots (a root may itself be a run dir)."""
    found: set[Path] = set()
    for root in roots:
        root = Path(root)
        candidates = [root] if (root / "metrics.jsonl").exists() else []
        candidates += [p.parent for p in root.rglob("metrics.jsonl")]
        found.update(c for c in candidates if "checkpoints" not in c.parts)
    return sorted(found)


def load_runs(roots: Iterable[str | Path]) -> Runs:
    """Read every run under ``roots``.

    Returns:
        :class:`Runs` with config columns (``task``, ``curriculum``, ``seed``, ...), ``run``
        (the run dir), ``done`` (whether it finished) and the metrics of each record.
    """
    train_rows, eval_rows, skipped = [], [], []
    for run in find_runs(roots):
        try:
            cfg = yaml.safe_load((run / "config.yaml").read_text())
        except (OSError, yaml.YAMLError) as e:
            skipped.append((str(run), f"no readable config.yaml ({e.__class__.__name__})"))
            continue
        records = read_metrics(run / "metrics.jsonl")
        if not any(r.get("kind") == "train" for r in records):
            skipped.append((str(run), "no train record in metrics.jsonl"))
            continue
        meta = {col: _get(cfg, path) for col, path in CONFIG_COLUMNS.items()}
        meta["run"] = str(run)
        meta["done"] = (run / "done.json").exists()
        for r in records:
            (train_rows if r.get("kind") == "train" else eval_rows).append({**meta, **r})
    for run, why in skipped:
        log.warning("skipped %s: %s", run, why)
    return Runs(pd.DataFrame(train_rows), pd.DataFrame(eval_rows), skipped)
