"""Tasks by name: the :class:`Task` interface and the registry that finds a task's module.

A task is one module (``sec/tasks/countdown.py``, or any importable module outside the project)
that defines a :class:`Task` subclass and ends with ``register(TheTask())``, the way a
reasoning-gym dataset module ends with ``register_dataset`` (``reasoning_gym/games/countdown.py``).
A task config (``conf/task/<name>.yaml``) names the task (``name``) and its module (``module``);
:func:`task_for` imports that module on lookup, so importing it registers the task. The built-in
tasks go through the same path (their YAMLs say ``module: sec.tasks.<name>``). Where only a task
name is known (a problem record scored in another process, e.g. verl's reward workers), the
module defaults to ``sec.tasks.<name>``; an out-of-tree task scored there needs its module
passed along (``module=``).

Display labels (``Countdown``, ``ARC-1D``) are the ``label`` of each task config
(:func:`task_labels`); the analysis reads them from there.
"""

from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Task", "get_task", "register", "registered_tasks", "task_for", "task_labels"]

_REGISTRY: dict[str, Task] = {}
_LOCK = threading.Lock()
#: the project's task configs (a source checkout: conf/ sits beside sec/)
CONF_TASK_DIR = Path(__file__).resolve().parents[2] / "conf" / "task"


class Task(ABC):
    """One task: how its problem records are built and cached, and when an answer is right.

    Subclasses set :attr:`name` and :attr:`answer_key` and implement the abstract methods;
    :class:`sec.tasks.puzzle.PuzzleTask` implements the data side for generated, levelled tasks
    (a new reasoning-gym task only adds its prompt, answer payload and checker).
    """

    #: registered name: the task config's ``name`` and the records' ``task`` field
    name: ClassVar[str]
    #: the ``generator`` field written into every record's answer payload (stored data)
    answer_key: ClassVar[str]

    @abstractmethod
    def cache_key(self, cfg: Mapping[str, Any]) -> str:
        """16-hex-digit hash of everything in ``cfg`` (and the code) that determines the records.

        Raises:
            ValueError: invalid config.
        """

    @abstractmethod
    def load_data(self, cfg: Mapping[str, Any], cache_dir: str | Path) -> pd.DataFrame:
        """Train + test records (:data:`sec.tasks.records.RECORD_COLUMNS`), built once and cached
        as ``<cache_dir>/<name>/<cache_key>.parquet`` with a manifest beside it."""

    @abstractmethod
    def check_data(self, cfg: Mapping[str, Any], cache_dir: str | Path) -> str:
        """``"ok"``, ``"missing"``, ``"corrupt: ..."`` or ``"stale: ..."`` for the cached set."""

    @abstractmethod
    def is_correct(self, answer_text: str, answer: Mapping[str, Any]) -> bool:
        """Whether an extracted final answer (not a whole completion) solves the problem whose
        decoded answer payload is ``answer``. Must return in bounded time on any thread (the
        reward's contract, docs/rewards.md); an exception means "wrong", except
        :class:`sec.tasks.bounded.CallTimeout` (the bounded check ran out of time: scored 0 and
        counted as a timeout)."""

    def normalize(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """Validated plain copy of the config fields that determine the data.

        Raises:
            ValueError: one line naming the bad field.
        """
        return dict(cfg)

    def shard_plan(self, cfg: Mapping[str, Any]) -> list[tuple[str, int]]:
        """The ``(split, level)`` shards :meth:`generate_shard` makes, in order; ``[]`` when the
        set is built in one piece by :meth:`load_data`."""
        return []

    def generate_shard(self, cfg: Mapping[str, Any], cache_dir: str | Path, split: str, level: int) -> int:
        """Make one shard (one SLURM array task); returns its rows.

        Raises:
            ValueError: the task has no such shard.
        """
        raise ValueError(f"task {self.name!r}: no shard ({split!r}, {level}); it is built in one piece")


def register(task: Task) -> Task:
    """Add ``task`` under ``task.name`` (a module's last statement); returns it.

    Raises:
        ValueError: another task object of a different class already has that name.
    """
    with _LOCK:
        old = _REGISTRY.get(task.name)
        if old is not None and type(old) is not type(task):
            raise ValueError(f"task {task.name!r} is registered twice ({type(old).__name__}, {type(task).__name__})")
        _REGISTRY[task.name] = task
    return task


def registered_tasks() -> dict[str, Task]:
    """The tasks registered so far in this process (name -> task), a copy."""
    with _LOCK:
        return dict(_REGISTRY)


def _import(module: str, name: str) -> None:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module.startswith(exc.name):
            raise  # the module exists but one of its imports does not
        known = sorted(registered_tasks())
        raise ValueError(
            f"unknown task {name!r}: cannot import module {module!r} (set task.module to the module that "
            f"registers it; registered: {known})"
        ) from None


def get_task(name: str, module: str | None = None) -> Task:
    """The task registered as ``name``, importing ``module`` (default ``sec.tasks.<name>``) first
    when it is not registered yet.

    Raises:
        ValueError: the module cannot be imported or registers no task of that name.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"task name must be a non-empty str, got {name!r}")
    task = _REGISTRY.get(name)
    if task is None:
        module = module or f"sec.tasks.{name}"
        _import(module, name)
        task = _REGISTRY.get(name)
        if task is None:
            raise ValueError(f"unknown task {name!r}: module {module!r} registers {sorted(_REGISTRY)}, not {name!r}")
    return task


def task_for(cfg: Mapping[str, Any]) -> Task:
    """The task of a single-task config (``name`` and optional ``module``).

    Raises:
        ValueError: not a mapping, no ``name``, or no such task.
    """
    if not isinstance(cfg, Mapping):
        raise ValueError(f"task config must be a mapping, got {type(cfg).__name__}")
    if "name" not in cfg:
        raise ValueError(f"task config is missing field(s) ['name'] (has {sorted(map(str, cfg))})")
    module = cfg.get("module")
    return get_task(cfg["name"], None if module is None else str(module))


def task_labels(conf_dir: str | Path | None = None) -> dict[str, str]:
    """Display label of every task config in ``conf_dir`` (default: the project's ``conf/task``):
    ``name -> label`` from each YAML's ``name`` and ``label`` keys (the name when it has no label)."""
    from omegaconf import OmegaConf

    out: dict[str, str] = {}
    for path in sorted(Path(conf_dir or CONF_TASK_DIR).glob("*.yaml")):
        cfg = OmegaConf.load(path)
        name = str(cfg.get("name", path.stem))
        out[name] = str(cfg.get("label") or name)
    return out
