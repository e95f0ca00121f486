"""Launch verl's trainer as a child process, fold its metrics into ``metrics.jsonl`` while it
runs, resume from the run's newest complete checkpoint, and checkpoint on SLURM's preemption
signal.

Preemption (SLURM's ``USR2``, sec/preempt.py): SLURM signals every process of the job step, so
verl and its Ray processes are started ignoring that signal and only the launcher acts on it.
The launcher writes ``verl/save_request``; after the step in progress the dataset inside verl's
trainer (:meth:`sec.backends.verl_ext.SECDataset.on_batch_end`) sees it and arms verl's public
ESI hook (``verl.utils.checkpoint.checkpoint_manager.should_save_ckpt_esi``: a capacity-block
expiration time read from the environment of the trainer's process), so verl saves a checkpoint
at the next step's save point (``trainer.save_freq > 0`` is required). Once that checkpoint holds
the curriculum state the launcher stops verl and hands over to submitit's requeue; the requeued
job resumes there. A preemption thus costs no finished step, but the checkpoint comes up to two
steps (plus a save) after the signal: see docs/verl.md for sizing ``signal_delay_s``.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from sec import rundir
from sec.backends.verl.compose import build
from sec.backends.verl.config import verl_env_vars
from sec.backends.verl.data import val_records, write_run_files
from sec.backends.verl.metrics import MetricsMerger
from sec.backends.verl.paths import VerlPaths, verl_paths
from sec.errors import ConfigError
from sec.evaluate import eval_group
from sec.preempt import PreemptionGuard, preempt_signal

if TYPE_CHECKING:
    from sec.workspace import Workspace

log = logging.getLogger("sec.backends.verl")

#: the directory holding the `sec` package (on verl's PYTHONPATH)
SOURCE_ROOT = Path(__file__).resolve().parents[3]


def prepare_resume(paths: VerlPaths) -> int:
    """Point verl's resume tracker (``latest_checkpointed_iteration.txt``, read by
    ``RayPPOTrainer._load_checkpoint`` with ``resume_mode=auto``) at the newest checkpoint that
    holds the curriculum state: a checkpoint verl wrote just before an interruption, before
    the dataset added the state, is passed over. Without one the tracker is removed, so the run
    starts from scratch.

    Returns:
        the step resumed from, 0 for a fresh start.
    """
    newest = rundir.newest_complete_checkpoint(paths.checkpoints, "verl")
    if newest is None:
        paths.tracker.unlink(missing_ok=True)
        return 0
    step = newest[0]
    if not paths.tracker.exists() or paths.tracker.read_text().strip() != str(step):
        log.info("resume tracker set to step %d (the newest checkpoint with a curriculum state)", step)
        paths.tracker.write_text(str(step))
    return step


#: prctl(2) option: the signal the kernel sends this process when its parent dies
PR_SET_PDEATHSIG = 1


def _child_setup() -> None:  # runs in the child between fork and exec
    """Ignore the preemption signal (the launcher acts on it), and die with the launcher: a
    launcher killed outright (``kill -9``, an OOM kill) must not leave verl training and writing
    into the run dir that a rerun resumes (``PR_SET_PDEATHSIG``; Linux, elsewhere skipped).
    Ray's own processes exit when verl's driver does."""
    signal.signal(preempt_signal(), signal.SIG_IGN)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def spawn(command: Sequence[str], cwd: Path, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start ``command`` in a session of its own (so :func:`stop` reaches Ray's processes too),
    with the preemption signal ignored (inherited through exec by verl and the Ray processes it
    starts) and killed if the launcher dies (:func:`_child_setup`), stdout and stderr appended
    to ``log_path``."""
    with log_path.open("ab") as out:
        return subprocess.Popen(
            list(command),
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_child_setup,
        )


def stop(proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    """SIGTERM to the child's process group, SIGKILL after ``timeout_s``."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()


def supervise(
    proc: subprocess.Popen, merger: MetricsMerger, paths: VerlPaths, guard: PreemptionGuard, poll_s: float
) -> str:
    """Poll verl until it exits or, after a preemption signal, until its next checkpoint is
    complete (then stop it).

    Returns:
        ``"exited"`` (verl ended by itself) or ``"preempted"`` (verl stopped after its checkpoint,
        or at once when the run saves no periodic checkpoints).
    """
    after: int | None = None
    while proc.poll() is None:
        merger.poll()
        if guard.requested:
            newest = rundir.newest_complete_checkpoint(paths.checkpoints, "verl")
            if after is None:
                after = newest[0] if newest else 0
                rundir.write_json_atomic(paths.save_request, {"after_step": after, "time": time.time()})
                log.warning("preemption: verl saves at its next checkpoint point (after step %d)", after)
            if not _saves(paths) or (newest and newest[0] > after):
                stop(proc)
                return "preempted"
        time.sleep(poll_s)
    return "exited"


def _saves(paths: VerlPaths) -> bool:
    """Whether the run saves periodic checkpoints (``train.save_every > 0``: verl's
    ``trainer.save_freq > 0``), from the spec."""
    return int(json.loads(paths.spec.read_text()).get("save_every", 0)) > 0


def check_flash_attn(ws: Workspace) -> None:
    """PPO's critic needs flash-attn: verl 0.9.1 loads it with ``attn_implementation=
    "flash_attention_2"`` whatever the config says (``verl/utils/model.py: load_valuehead_model``).

    Raises:
        ConfigError: for ``algorithm=ppo`` when flash-attn is not importable by this interpreter
            (checked only when verl runs on it: ``backend.python`` null).
    """
    import importlib.util

    if (
        ws.cfg.algorithm.name == "ppo"
        and not ws.cfg.backend.get("python")
        and not importlib.util.find_spec("flash_attn")
    ):
        raise ConfigError(
            "algorithm=ppo on backend=verl needs flash-attn for the critic (verl loads it with flash_attention_2): "
            "pip install flash-attn==2.8.3 --no-build-isolation (see docs/verl.md)"
        )


def _merger(ws: Workspace, paths: VerlPaths) -> MetricsMerger:
    cfg = ws.cfg
    n_problems: dict[tuple[str, str], int] = {}
    for r in val_records(ws):
        key = (str(r["task"]), eval_group(r))
        n_problems[key] = n_problems.get(key, 0) + 1
    return MetricsMerger(
        ws.metrics,
        paths,
        int(cfg.train.steps),
        n_problems,
        list(cfg.task.train_levels),
        list(cfg.task.ood_levels),
        list(cfg.task.get("id_sets") or []),
        list(cfg.task.get("ood_sets") or []),
        groups_per_step=int(cfg.train.prompts_per_step),
        num_generations=int(cfg.algorithm.num_generations),
    )


def _resume(ws: Workspace, paths: VerlPaths, merger: MetricsMerger) -> int:
    """Keep the records an interrupted attempt logged up to its checkpoint, drop later ones and
    the old logs; returns the step resumed from (0: fresh start)."""
    resumed = prepare_resume(paths)
    merger.poll(final=True, max_step=resumed)
    dropped = ws.metrics.truncate_after(resumed if resumed else -1)
    merger.written = {(s, k) for s, k in merger.written if s <= resumed} if resumed else set()
    for f in (paths.verl_log, paths.curriculum_log, paths.save_request):
        f.unlink(missing_ok=True)
    log.info(
        "verl: %s (%d metric records dropped)", f"resuming from step {resumed}" if resumed else "fresh start", dropped
    )
    return resumed


def verl_env(cfg: DictConfig) -> dict[str, str]:
    """verl's environment: ``sec`` importable, the TRL shim (and on the CPU the CPU platform)
    imported at ``import verl`` (the Ray workers get the same from
    ``ray_kwargs.ray_init.runtime_env``: :func:`sec.backends.verl.config.verl_env_vars`)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SOURCE_ROOT), env.get("PYTHONPATH")) if p)
    env.update(verl_env_vars(cfg))
    return env


def train(ws: Workspace) -> None:
    """Run verl's trainer for ``ws`` as a child process and fold its metrics into
    ``metrics.jsonl``; resumes from the newest checkpoint with a curriculum state; on SLURM's
    preemption signal, checkpoints at verl's next save point and hands over to submitit.

    Raises:
        ConfigError: see :func:`check_flash_attn` and :func:`sec.backends.verl.compose.build`.
        RuntimeError: when verl exits with an error (its exit code and the log path).
    """
    check_flash_attn(ws)
    paths = verl_paths(ws.run_dir)
    paths.root.mkdir(parents=True, exist_ok=True)
    merger = _merger(ws, paths)
    _resume(ws, paths, merger)
    write_run_files(ws, paths)
    run = build(ws, resolve_model=True)
    ws.model_source = run.model_source
    rundir.write_model_source(ws.run_dir, run.model, run.model_source)
    paths.command.write_text("#!/usr/bin/env bash\n" + shlex.join(run.command) + "\n")
    log.info("verl command: %s", paths.command)
    with PreemptionGuard() as guard:
        proc = spawn(run.command, ws.run_dir, verl_env(ws.cfg), paths.process_log)
        try:
            outcome = supervise(proc, merger, paths, guard, float(ws.cfg.backend.poll_s))
        finally:
            stop(proc)
        # after a clean exit the last step (never fed back) is written too; otherwise only
        # complete records are, and the next attempt resumes from the last checkpoint
        merger.poll(final=outcome == "exited" and proc.returncode == 0)
        if outcome == "preempted":
            guard.hand_over()  # the checkpoint is saved: submitit requeues the job and exits
            return
    if proc.returncode != 0:
        raise RuntimeError(f"verl exited with code {proc.returncode}; see {paths.process_log}")
