"""The run dir's contract, in one place: the names of its files, the newest *complete*
checkpoint, the curriculum state kept in every checkpoint, and resuming from it.

Both backends and :class:`sec.workspace.Workspace` use this module; nothing else knows these
names. Layout of a run dir::

    config.yaml         the resolved config
    metrics.jsonl       train and eval records (sec/metrics.py); a resume drops the records
                        after the checkpoint's step, so every step appears exactly once
    model_source.json   where the weights came from ({"path", "source"})
    checkpoints/        engine checkpoints: TRL ``checkpoint-<step>/``, verl
                        ``global_step_<step>/``; each holds ``curriculum.json``
    done.json           written last (final eval summary); a finished run is skipped
    failed.json         written when the run raised; a rerun stops unless ``rerun_failed=true``

A checkpoint is *complete* when it holds ``curriculum.json``: both backends write it after the
engine has written the model, optimizer and trainer state, so a checkpoint torn by a kill during
its save lacks it and is passed over (drqv2's ``Workspace.save_snapshot`` /
``load_snapshot``, with the engine writing most of the snapshot).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("sec.rundir")

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
MODEL_SOURCE = "model_source.json"
CHECKPOINTS = "checkpoints"
DONE = "done.json"
FAILED = "failed.json"
#: the curriculum state inside every checkpoint dir (``CurriculumPolicy.state_dict()`` as JSON)
CURRICULUM_STATE = "curriculum.json"

#: checkpoint dir names per engine: TRL's ``Trainer`` writes ``checkpoint-<step>``
#: (``transformers.trainer_utils.PREFIX_CHECKPOINT_DIR``), verl's ``RayPPOTrainer``
#: ``global_step_<step>``
CHECKPOINT_NAMES = {"trl": re.compile(r"checkpoint-(\d+)"), "verl": re.compile(r"global_step_(\d+)")}


class HasState(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` through a temporary file and ``os.replace``, so a reader
    (or a resume after a kill) sees the old file or the new one, never a torn one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def checkpoints(checkpoint_dir: str | Path, engine: str) -> list[tuple[int, Path]]:
    """Every checkpoint dir of ``engine`` under ``checkpoint_dir``, complete or not, as
    ``(step, path)`` in ascending step order (empty when the dir does not exist).

    Raises:
        ValueError: for an engine other than those of :data:`CHECKPOINT_NAMES`.
    """
    if engine not in CHECKPOINT_NAMES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(CHECKPOINT_NAMES)}")
    root = Path(checkpoint_dir)
    if not root.is_dir():
        return []
    found = []
    for d in root.iterdir():
        m = CHECKPOINT_NAMES[engine].fullmatch(d.name)
        if m and d.is_dir():
            found.append((int(m.group(1)), d))
    return sorted(found)


def is_complete(checkpoint: str | Path) -> bool:
    """Whether a checkpoint dir holds the curriculum state (written last: see module doc)."""
    return (Path(checkpoint) / CURRICULUM_STATE).is_file()


def newest_complete_checkpoint(checkpoint_dir: str | Path, engine: str) -> tuple[int, Path] | None:
    """The newest complete checkpoint ``(step, path)``, or ``None`` when there is none.

    A newer incomplete one (the job was killed while saving it) is skipped with a warning;
    ``transformers.trainer_utils.get_last_checkpoint`` would pick it and the resume would fail.
    """
    for step, path in reversed(checkpoints(checkpoint_dir, engine)):
        if is_complete(path):
            return step, path
        log.warning(
            "checkpoint %s is incomplete (no %s: the job stopped while saving): skipped", path, CURRICULUM_STATE
        )
    return None


def save_curriculum_state(checkpoint: str | Path, policy: HasState) -> Path:
    """Write ``policy.state_dict()`` into a checkpoint dir (atomically; this marks the
    checkpoint complete). Returns the file written."""
    checkpoint = Path(checkpoint)
    checkpoint.mkdir(parents=True, exist_ok=True)
    write_json_atomic(checkpoint / CURRICULUM_STATE, policy.state_dict())
    return checkpoint / CURRICULUM_STATE


def load_curriculum_state(checkpoint: str | Path, policy: HasState) -> None:
    """Restore ``policy`` from a checkpoint dir's curriculum state.

    Raises:
        FileNotFoundError: if the checkpoint has no curriculum state (an incomplete checkpoint:
            resume from :func:`newest_complete_checkpoint` instead).
        ValueError: if the state belongs to another policy or another set of arms.
    """
    path = Path(checkpoint) / CURRICULUM_STATE
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {Path(checkpoint)} has no {CURRICULUM_STATE}: cannot resume the curriculum"
        )
    policy.load_state_dict(json.loads(path.read_text()))


def prune_checkpoints(checkpoint_dir: str | Path, engine: str, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest *complete* checkpoints, and incomplete ones older than
    the newest complete one. Call it only after the newest checkpoint is complete: the newest
    complete checkpoint then survives until the next one is complete. ``keep <= 0`` keeps all.

    Returns:
        the dirs deleted.
    """
    if keep <= 0:
        return []
    found = checkpoints(checkpoint_dir, engine)
    complete = [(s, p) for s, p in found if is_complete(p)]
    if not complete:
        return []
    kept = {p for _, p in complete[-keep:]}
    newest = complete[-1][0]
    doomed = [p for s, p in found if p not in kept and (is_complete(p) or s < newest)]
    for p in doomed:
        shutil.rmtree(p, ignore_errors=True)
    return doomed


def write_model_source(run_dir: str | Path, path: str, source: str) -> None:
    """Record where the run's weights came from (``hub``, ``cache``, ``package``, ...)."""
    write_json_atomic(Path(run_dir) / MODEL_SOURCE, {"path": path, "source": source})
