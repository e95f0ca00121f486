"""The run object (drqv2's Workspace pattern): one run dir holds everything a run needs to
finish or resume, and a run that finds its own snapshot continues from it.

Run dir layout (names and the checkpoint contract: :mod:`sec.rundir`)::

    config.yaml        the resolved config (Hydra's own .hydra/ holds the unresolved one)
    metrics.jsonl      train and eval records (sec/metrics.py)
    checkpoints/       engine checkpoints, each with the curriculum state (curriculum.json)
    done.json          written last: final eval summary; a finished run is skipped on rerun
    failed.json        written when the run raised: error, traceback, host, SLURM job and log
                       paths; a rerun stops at once unless ``rerun_failed=true``
    interrupted.json   written when a preemption / time-limit signal stopped the run after a
                       checkpoint and the job was not requeued: the reason; a rerun resumes
    run.lock           held while a process runs the run: a second one refuses to start

Lifecycle of :meth:`Workspace.run`: skip a finished run; take the run dir's lock; refuse a run
that failed before; then set up, train and evaluate under a :class:`sec.preempt.PreemptionGuard`,
which turns SLURM's preemption / time-limit signal into a hand-over to submitit's requeue at the
first safe point (before training: at once; during training: the backend saves first).
"""

from __future__ import annotations

import json
import logging
import random
import socket
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from sec import rundir
from sec.backends import get_backend, get_dry_run
from sec.curriculum import CurriculumPolicy, arms_of_records, build_curriculum
from sec.dynamic_sampling import DynamicSampling
from sec.errors import ConfigError, RunFailedBefore, RunInterrupted
from sec.evaluate import evaluate
from sec.metrics import MetricsWriter, read_metrics
from sec.models import load_model_and_tokenizer
from sec.preempt import PreemptionGuard
from sec.tasks import load_task_data, puzzle_reward
from sec.tasks.rewards import ANSWER_EXTRACTIONS

log = logging.getLogger("sec.workspace")

DONE = rundir.DONE
FAILED = rundir.FAILED
INTERRUPTED = rundir.INTERRUPTED
__all__ = ["ConfigError", "RunFailedBefore", "RunInterrupted", "Workspace", "check_config", "task_components"]


#: the mix's settings that every component of a multi-task task takes over
_MIX_KEYS = (
    "train_levels",
    "ood_levels",
    "test_levels",
    "train_per_level",
    "test_per_level",
    "format_reward",
    "answer_extraction",
)


def task_components(task: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The single-task configs of a task: itself, or for a mix (``components:``, e.g.
    ``task=puzzles``) each component with the mix's levels, sizes and format reward."""
    plain = OmegaConf.to_container(task, resolve=True) if isinstance(task, DictConfig) else dict(task)
    if not plain.get("components"):
        return [plain]  # type: ignore[list-item]
    return [{**comp, **{k: plain[k] for k in _MIX_KEYS if k in plain}} for comp in plain["components"].values()]


def check_config(cfg: DictConfig) -> None:
    """Cross-group checks Hydra's composition cannot make.

    Raises:
        ConfigError: naming the offending key.
    """
    components = task_components(cfg.task)
    for task in components:
        levels = {int(k) for k in task["levels"]}
        for key in ("train_levels", "ood_levels", "test_levels"):
            missing = sorted(set(int(x) for x in task[key]) - levels)
            if missing:
                raise ConfigError(
                    f"task.{key} has levels {missing} that task {task['name']} does not define ({sorted(levels)})"
                )
        if not set(int(x) for x in task["ood_levels"]) <= set(int(x) for x in task["test_levels"]):
            raise ConfigError("task.ood_levels must be a subset of task.test_levels")
    if "task" in cfg.curriculum.arm_fields and len(components) < 2:
        raise ConfigError(
            f"curriculum={cfg.curriculum.name} has one arm per (task, level) and needs a multi-task task "
            f"(task=puzzles), not task={cfg.task.name}"
        )
    for key in ("steps", "prompts_per_step", "max_completion_length"):
        if int(cfg.train[key]) < 1:
            raise ConfigError(f"train.{key} must be >= 1, got {cfg.train[key]}")
    if int(cfg.algorithm.num_generations) < 2:
        raise ConfigError("algorithm.num_generations must be >= 2 (advantages are relative to the group)")
    for task in components:
        how = task.get("answer_extraction") or "boxed"
        if how not in ANSWER_EXTRACTIONS:
            raise ConfigError(
                f"task.answer_extraction={how!r} (task {task['name']}) is not one of {sorted(ANSWER_EXTRACTIONS)}"
            )
    if int(cfg.eval.k) < 1:
        raise ConfigError(f"eval.k must be >= 1, got {cfg.eval.k}")
    if cfg.backend.name == "trl" and cfg.algorithm.name == "ppo":
        raise ConfigError("backend=trl offers algorithm=grpo|rloo, not ppo (PPO needs a critic: use backend=verl)")
    DynamicSampling.from_config(cfg.train)  # its settings' errors, before anything runs


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (the curriculum has its own seeded RNG)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Workspace:
    """One training run.

    Args:
        cfg: the composed run config (``conf/config.yaml`` and its groups).
        run_dir: the run's output directory (Hydra's job output dir).
    """

    def __init__(self, cfg: DictConfig, run_dir: str | Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = self.run_dir / rundir.CHECKPOINTS
        self.cache_dir = Path(str(cfg.paths.cache_dir))
        self.policy: CurriculumPolicy
        self.metrics: MetricsWriter
        self.train_records: list[dict[str, Any]] = []
        self.test_records: list[dict[str, Any]] = []
        self.model_source: str | None = None
        self.tokenizer: Any = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def done(self) -> bool:
        return (self.run_dir / DONE).exists()

    def run(self) -> dict[str, Any]:
        """Train and evaluate, or return the summary of a run that already finished; resume
        an interrupted one from its last checkpoint (backend).

        Returns:
            the final summary: ``{"<split> pass@1": value, ...}`` of the last evaluation.

        Raises:
            RunLocked: another live process runs this run dir (:class:`sec.rundir.RunLock`).
            RunFailedBefore: the run failed in an earlier attempt (``failed.json``) and
                ``rerun_failed`` is not true.
            ConfigError: an invalid config (not recorded: sec/launch.py rejects the job).
            RunInterrupted: a signal stopped the run and the job was not requeued, after
                recording it in ``interrupted.json`` (a rerun resumes it).
            SystemExit: from submitit after a requeue (nothing recorded: the job goes on).
            Exception: whatever else the run raised, after recording it in ``failed.json``.
        """
        from sec.slurm import job_info

        if self.done:
            log.info("%s is finished (%s exists): skipped", self.run_dir, DONE)
            return json.loads((self.run_dir / DONE).read_text())
        with rundir.RunLock(self.run_dir, job_info()), PreemptionGuard() as guard:
            if self.done:  # finished by the process that held the lock until just now
                return json.loads((self.run_dir / DONE).read_text())
            self._check_failed_before()
            self._check_interrupted_before()
            try:
                return self._train_and_evaluate(guard)
            except ConfigError:
                raise  # an invalid config is rejected (sec/launch.py), not a failure: judged afresh on rerun
            except RunInterrupted as exc:
                self._record(INTERRUPTED, {"reason": str(exc)})
                log.warning("run interrupted: %s (recorded in %s)", exc, self.run_dir / INTERRUPTED)
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                info = self._record(FAILED, {"error": error, "traceback": traceback.format_exc()})
                log.exception("run failed: %s (recorded in %s)", info["error"], self.run_dir / FAILED)
                raise

    def _check_failed_before(self) -> None:
        marker = self.run_dir / FAILED
        if not marker.exists():
            return
        try:
            error = json.loads(marker.read_text()).get("error", "?")
        except (OSError, json.JSONDecodeError):
            error = "unreadable failed.json"
        if not bool(self.cfg.get("rerun_failed", False)):
            raise RunFailedBefore(
                f"{self.run_dir} failed before ({error}; see {marker}): not rerun; rerun_failed=true runs it again"
            )
        log.warning("%s failed before (%s): running it again (rerun_failed=true)", self.run_dir, error)
        marker.unlink()

    def _check_interrupted_before(self) -> None:
        marker = self.run_dir / INTERRUPTED
        if marker.exists():
            try:
                reason = json.loads(marker.read_text()).get("reason", "?")
            except (OSError, json.JSONDecodeError):
                reason = "unreadable interrupted.json"
            log.info("%s was interrupted (%s): resuming it", self.run_dir, reason)
            marker.unlink()

    def _record(self, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Write ``fields`` plus time, host and the SLURM job (id, log) to ``<run dir>/<name>``;
        an unwritable run dir is logged, not raised (it must not hide the run's own error)."""
        from sec.slurm import job_info

        info = {**fields, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": socket.gethostname(), **job_info()}
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            rundir.write_json_atomic(self.run_dir / name, info)
        except OSError as err:
            log.error("could not write %s: %s", self.run_dir / name, err)
        return info

    def _train_and_evaluate(self, guard: PreemptionGuard) -> dict[str, Any]:
        check_config(self.cfg)
        if self.cfg.backend.get("dry_run", False):  # print what the backend would run; no data, no training
            get_dry_run(str(self.cfg.backend.name))(self)
            return {}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / rundir.CONFIG).write_text(OmegaConf.to_yaml(self.cfg, resolve=True))
        seed_everything(int(self.cfg.seed))
        if guard.requested:  # signalled as the job started: nothing to save yet
            guard.hand_over()
        self.setup()
        if guard.requested:  # signalled during the data set-up: nothing to save yet
            guard.hand_over()
        wandb_cfg = self.cfg.logger if self.cfg.logger.name == "wandb" else None
        self.metrics = MetricsWriter(
            self.run_dir,
            OmegaConf.to_container(wandb_cfg, resolve=True) if wandb_cfg is not None else None,
            OmegaConf.to_container(self.cfg, resolve=True),  # type: ignore[arg-type]
            run_name=f"{self.cfg.task.name}-{self.cfg.curriculum.name}-s{self.cfg.seed}",
        )
        try:
            get_backend(str(self.cfg.backend.name))(self)
        finally:
            self.metrics.close()
        summary = self.summary()
        rundir.write_json_atomic(self.run_dir / DONE, summary)
        log.info("run finished: %s", summary)
        return summary

    def setup(self) -> None:
        """Load (or generate once) the task data and build the curriculum."""
        frames = [load_task_data(comp, self.cache_dir / "data") for comp in task_components(self.cfg.task)]
        df = pd.concat(frames, ignore_index=True)
        train_levels = {int(x) for x in self.cfg.task.train_levels}
        train = df[(df["split"] == "train") & df["level"].isin(train_levels)]
        self.train_records = train.reset_index(drop=True).to_dict("records")
        self.test_records = df[df["split"] == "test"].reset_index(drop=True).to_dict("records")
        if not self.train_records:
            raise ConfigError(f"task {self.cfg.task.name}: no training problems for levels {sorted(train_levels)}")
        fields = list(self.cfg.curriculum.arm_fields)
        try:
            self.policy = build_curriculum(
                OmegaConf.to_container(self.cfg.curriculum, resolve=True),  # type: ignore[arg-type]
                arms_of_records(self.train_records, fields),
                total_steps=int(self.cfg.train.steps),
                seed=int(self.cfg.seed),
            )
        except ValueError as exc:  # a curriculum that cannot apply to this task: one line
            raise ConfigError(str(exc)) from None
        log.info(
            "task %s: %d train / %d test problems; curriculum %s over arms %s",
            self.cfg.task.name,
            len(self.train_records),
            len(self.test_records),
            self.policy.name,
            self.policy.arms,
        )

    def load_model(self) -> tuple[Any, Any]:
        """The model and tokenizer of ``cfg.model``; records where the weights came from."""
        model, tokenizer, resolved = load_model_and_tokenizer(self.cfg.model, self.cache_dir)
        self.model_source = resolved.source
        self.tokenizer = tokenizer
        rundir.write_model_source(self.run_dir, resolved.path, resolved.source)
        return model, tokenizer

    def resume(self, engine: str) -> str | None:
        """Restore the curriculum from the newest complete checkpoint of ``engine`` and drop the
        metrics records after its step (the engine redoes those steps), so the finished
        ``metrics.jsonl`` has every step once; without a checkpoint, drop every record of an
        earlier attempt (the run starts over). See :mod:`sec.rundir`.

        Returns:
            the checkpoint dir to hand to the engine, or ``None`` for a fresh start.
        """
        found = rundir.newest_complete_checkpoint(self.checkpoint_dir, engine)
        if found is None:
            dropped = self.metrics.truncate_after(-1)
            if dropped:
                log.info("no checkpoint to resume from: restarting, %d records of an earlier attempt dropped", dropped)
            return None
        step, path = found
        rundir.load_curriculum_state(path, self.policy)
        dropped = self.metrics.truncate_after(step)
        log.info("resuming from %s (step %d; %d metric records after it dropped)", path, step, dropped)
        return str(path)

    # ------------------------------------------------------------------ scoring and eval
    @property
    def answer_extraction(self) -> str:
        """``task.answer_extraction`` (``boxed``, the paper's, when the task does not set it)."""
        return str(self.cfg.task.get("answer_extraction") or "boxed")

    def train_score(self, completion: str, record: Mapping[str, Any]) -> float:
        """Training reward (SEC.md §2): 1 correct, ``task.format_reward`` boxed but wrong, else 0."""
        return puzzle_reward(
            completion,
            record,
            train=True,
            format_reward=float(self.cfg.task.format_reward),
            extraction=self.answer_extraction,
        )

    def eval_score(self, completion: str, record: Mapping[str, Any]) -> float:
        """Validation score: 1 correct, else 0."""
        return puzzle_reward(
            completion,
            record,
            train=False,
            format_reward=float(self.cfg.task.format_reward),
            extraction=self.answer_extraction,
        )

    def evaluate(self, model: Any, step: int) -> list[dict[str, Any]]:
        """pass@1 on the test split (per task: per level, ID, OOD) written to metrics.jsonl."""
        records = []
        for task in sorted({str(r["task"]) for r in self.test_records}):
            records += self._evaluate_task(model, step, [r for r in self.test_records if r["task"] == task])
        self.metrics.write_many(records)
        return records

    def _evaluate_task(self, model: Any, step: int, test_records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        e = self.cfg.eval
        return evaluate(
            model,
            self.tokenizer,
            test_records,
            score=self.eval_score,
            train_levels=[int(x) for x in self.cfg.task.train_levels],
            ood_levels=[int(x) for x in self.cfg.task.ood_levels],
            prompt_format=str(self.cfg.model.prompt_format),
            k=int(e.k),
            temperature=float(e.temperature),
            max_new_tokens=int(e.max_new_tokens),
            batch_size=int(e.batch_size),
            max_problems_per_level=e.max_problems_per_level,
            max_batch_tokens=e.get("max_batch_tokens"),
            seed=int(self.cfg.seed) * 100_003 + step,
            step=step,
            id_sets=list(self.cfg.task.get("id_sets") or []),
            ood_sets=list(self.cfg.task.get("ood_sets") or []),
        )

    def summary(self) -> dict[str, Any]:
        """pass@1 of every split at the last evaluated step: ``"<split> pass@1"`` for one task;
        for a mix, ``"<task>/<split> pass@1"`` and ``"id pass@1"`` / ``"ood pass@1"`` as the
        mean over its tasks."""
        evals = [r for r in read_metrics(self.run_dir / rundir.METRICS) if r.get("kind") == "eval"]
        if not evals:
            return {}
        last = [r for r in evals if r["step"] == max(r["step"] for r in evals)]
        out: dict[str, Any] = {"step": last[0]["step"], "model_source": self.model_source}
        tasks = sorted({r["task"] for r in last})
        if len(tasks) == 1:
            out.update({f"{r['split']} pass@1": r["pass@1"] for r in last})
            return out
        out.update({f"{r['task']}/{r['split']} pass@1": r["pass@1"] for r in last})
        for split in ("id", "ood"):
            values = [r["pass@1"] for r in last if r["split"] == split]
            if values:
                out[f"{split} pass@1"] = float(np.mean(values))
        return out
