"""The run lifecycle without a cluster (sec/workspace.py, sec/preempt.py, sec/rundir.py): a
preemption signal acted on at the first safe point, the newest complete checkpoint kept
until the next one is complete, one process per run dir, and job dir names that fit a file
system. Real TRL training on the tiny profile, real ``python -m sec.launch`` processes;
tests/test_slurm.py does the same against a real SLURM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from test_launch import check_run

from conftest import CONF, ROOT
from sec import preempt, rundir
from sec.metrics import read_metrics
from sec.workspace import Workspace


def tiny_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["profile=tiny", "task=countdown", "curriculum=sec", *overrides])


def train_steps(run: Path) -> list[int]:
    return [r["step"] for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"]


def test_a_signal_during_a_periodic_save_stops_the_run_at_that_checkpoint(tmp_path, monkeypatch, guard_state):
    """USR2 lands while TRL writes the step-2 checkpoint (after the engine's files, before our
    on_save completes it): the run stops there, not one step (and one evaluation) later."""
    from transformers import Trainer

    from sec.errors import RunInterrupted

    save = Trainer._save_checkpoint

    def save_then_signal(self, model, trial):
        save(self, model, trial)
        if self.state.global_step == 2:
            os.kill(os.getpid(), signal.SIGUSR2)  # Python runs the handler before the next line

    monkeypatch.setattr(Trainer, "_save_checkpoint", save_then_signal)
    handed_over = []
    signal.signal(signal.SIGUSR2, lambda signum, frame: handed_over.append(signum))  # submitit's, in a job
    cfg = tiny_cfg("train.steps=4", "train.save_every=2", "eval.every=1")
    run = tmp_path / "run"
    with pytest.raises(RunInterrupted, match="returned without requeueing"):
        Workspace(cfg, run).run()
    assert handed_over == [signal.SIGUSR2]
    assert train_steps(run) == [1, 2]
    assert [s for s, _ in rundir.checkpoints(run / "checkpoints", "trl")] == [2]
    assert rundir.is_complete(run / "checkpoints" / "checkpoint-2")
    assert "reason" in json.loads((run / "interrupted.json").read_text())
    assert not (run / "failed.json").exists() and not (run / "done.json").exists()

    # the rerun (no job runner now) resumes from that checkpoint and has every step once
    assert not preempt.PreemptionGuard().requested  # the outermost guard's exit cleared the state
    signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    Workspace(cfg, run).run()
    assert train_steps(run) == [1, 2, 3, 4] and not (run / "interrupted.json").exists()


def launch(*args: str, env: dict[str, str] | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sec.launch", *args],
        cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_a_stop_while_the_next_checkpoint_is_completed_keeps_the_previous_one(tmp_path):
    """``save_total_limit: 1`` (profile=cpu_bench): the step-2 checkpoint cannot be completed
    (its curriculum state cannot be written: as if the job died there); the step-1 checkpoint
    must still be on disk, and the rerun resumes from it rather than from step 0."""
    run = tmp_path / "run"
    args = ("profile=tiny", "task=countdown", "curriculum=sec", "train.steps=3", "train.save_every=1")
    args = (*args, "train.save_total_limit=1", f"hydra.run.dir={run}")
    first = subprocess.Popen(
        [sys.executable, "-m", "sec.launch", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    # once checkpoint-1 is complete (and before step 2 ends), make checkpoint-2's curriculum
    # state unwritable: write_json_atomic's temporary file is a directory
    obstacle = run / "checkpoints" / "checkpoint-2" / (rundir.CURRICULUM_STATE + ".tmp")
    deadline = time.time() + 600
    while not rundir.is_complete(run / "checkpoints" / "checkpoint-1") and time.time() < deadline:
        assert first.poll() is None, first.communicate()[1][-3000:]
        time.sleep(0.05)
    obstacle.mkdir(parents=True)
    _, err = first.communicate(timeout=600)
    assert first.returncode != 0 and "IsADirectoryError" in err, err[-3000:]
    assert train_steps(run) == [1, 2]
    assert rundir.newest_complete_checkpoint(run / "checkpoints", "trl") is not None, "no complete checkpoint left"
    assert rundir.newest_complete_checkpoint(run / "checkpoints", "trl")[0] == 1

    obstacle.rmdir()
    r = launch(*args, "rerun_failed=true")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "checkpoint-1 (step 1" in r.stdout + r.stderr
    check_run(run, steps=3, curriculum="sec")
    # pruning after completion: only the newest checkpoint is left
    assert [s for s, _ in rundir.checkpoints(run / "checkpoints", "trl")] == [3]


def test_a_second_process_refuses_a_run_dir_in_use_and_a_dead_one_does_not_block(tmp_path):
    run = tmp_path / "run"
    args = ("profile=tiny", "task=countdown", "curriculum=sec", "train.steps=50", f"hydra.run.dir={run}")
    first = subprocess.Popen(
        [sys.executable, "-m", "sec.launch", *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.time() + 300
        while not (run / "metrics.jsonl").exists() and time.time() < deadline and first.poll() is None:
            time.sleep(0.2)
        assert first.poll() is None, "the first run ended early"
        r = launch(*args, timeout=240)
        assert r.returncode == 1
        (line,) = r.stderr.strip().splitlines()  # one line naming the holder
        assert line.startswith(f"sec.launch: {run} is in use by pid {first.pid} on ")
        assert "not run twice" in line
        assert not (run / "failed.json").exists()  # the refusal is not the run's failure
    finally:
        first.kill()  # SIGKILL: no chance to clean up; the kernel drops its lock
        first.wait()
    assert json.loads((run / "run.lock").read_text())["pid"] == first.pid  # its stale record stays
    with rundir.RunLock(run):  # and does not block
        pass


def test_long_sweeps_get_bounded_job_dir_names_that_a_rerun_finds_again(tmp_path):
    sweep = tmp_path / "sweep"
    # ~15 overrides that change nothing in the run: the job dir name alone would be > 255 bytes
    same = [
        "train.learning_rate=1.0e-4", "train.weight_decay=0.0", "train.warmup_steps=0", "train.max_grad_norm=1.0",
        "train.temperature=1.0", "train.save_every=1", "train.save_total_limit=2", "eval.k=2", "eval.every=1",
        "eval.temperature=1.0", "eval.batch_size=16", "task.train_per_level=4", "task.test_per_level=2",
        "tag=a_sweep_tag_long_enough_to_matter", "seed=0",
    ]  # fmt: skip
    args = (
        "-m",
        "profile=tiny",
        "task=countdown",
        "curriculum=sec",
        "train.steps=1",
        *same,
        f"hydra.sweep.dir={sweep}",
    )
    r = launch(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    (job,) = [p for p in sweep.iterdir() if p.is_dir()]
    assert len(job.name.encode()) <= 255 and ",hash=" in job.name
    assert job.name.startswith("0_curriculum=sec,eval.batch_size=16,")  # readable: Hydra's order
    check_run(job, steps=1, curriculum="sec")
    r = launch(*args)  # the rerun finds the same dir and skips the finished run
    assert r.returncode == 0 and [p for p in sweep.iterdir() if p.is_dir()] == [job]
    assert "is finished (done.json exists): skipped" in r.stdout + r.stderr


def test_job_dir_names_are_hydras_unless_too_long():
    assert rundir.job_dir_name(3, "curriculum=sec,task=zebra") == "3_curriculum=sec,task=zebra"
    assert rundir.job_dir_name(0, "") == "0_"
    long = ",".join(f"key{i}=value{i}" for i in range(40))
    name = rundir.job_dir_name(7, long)
    assert name == rundir.job_dir_name(7, long) and len(name.encode()) <= 140
    assert name.startswith("7_key0=value0,key1=value1,") and name.split(",")[-2].startswith("key")
    assert rundir.job_dir_name(7, long + "x") != name  # any change in the overrides, another dir
    # a slash in a value makes Hydra nest dirs: fine while each part fits, flattened otherwise
    assert rundir.job_dir_name(1, "paths.cache_dir=/a/b") == "1_paths.cache_dir=/a/b"
    assert "/" not in rundir.job_dir_name(1, "paths.cache_dir=/a/" + "b" * 300)
