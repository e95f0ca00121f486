"""Preemption, requeue and time limits against a real SLURM (the local one of
``scripts/slurm_local.sh start``; skipped without one, failed in CI).

Each test runs real ``python -m sec.launch -m hydra/launcher=slurm`` sweeps on the tiny profile
and injects the fault through SLURM itself (``scancel --signal``, ``--batch``, ``--full``), then
checks the SLURM accounting (``sacct -D``: one line per attempt) and the run dir: every step
once, no ``failed.json`` for a preempted run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_launch import check_run
from test_slurm import assert_same_records, job_dirs, sacct_states, sec_launch, submitted

from conftest import ROOT
from sec.metrics import read_metrics

pytestmark = pytest.mark.slurm

#: a tiny run long enough to be signalled mid-training; no periodic checkpoint (save_every >
#: steps): only the signal and the end of training save
RUN = ("profile=tiny", "task=countdown", "curriculum=sec", "train.steps=6", "train.save_every=100")


class Sweep:
    """A ``sec.launch -m hydra/launcher=slurm`` process whose output is collected as it comes."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = sec_launch("-m", "hydra/launcher=slurm", *args, env=env)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self._reader.start()

    def job_id(self, n: int, timeout: float = 300) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            jobs = submitted("".join(self.lines))
            if n in jobs:
                return jobs[n]
            time.sleep(0.2)
        raise AssertionError(f"job #{n} was never submitted:\n{''.join(self.lines)[-3000:]}")

    def finish(self, timeout: float = 900) -> tuple[int, str]:
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=30)
        return self.proc.returncode, "".join(self.lines)


def wait_for_train_steps(sweep_dir: Path, n_job: int, steps: int, sweep: Sweep, timeout: float = 600) -> Path:
    """The run dir of job ``n_job`` once its metrics have ``steps`` train records."""
    deadline = time.time() + timeout
    while time.time() < deadline and sweep.proc.poll() is None:
        for metrics in sweep_dir.glob(f"{n_job}_*/metrics.jsonl"):
            if sum(r["kind"] == "train" for r in read_metrics(metrics)) >= steps:
                return metrics.parent
        time.sleep(0.3)
    raise AssertionError(f"job #{n_job} never reached step {steps}:\n{''.join(sweep.lines)[-3000:]}")


def squeue_state(job: str) -> str:
    r = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True)
    return r.stdout.strip()


def wait_for_restart(job: str, timeout: float = 300) -> None:
    """Wait until the requeued job has left RUNNING and runs again."""
    deadline = time.time() + timeout
    left = False
    while time.time() < deadline:
        state = squeue_state(job)
        if not state:  # out of the queue: it ended instead
            raise AssertionError(f"job {job} ended without a requeue: {sacct_states(job, attempts=True)}")
        left = left or state != "RUNNING"
        if left and state == "RUNNING":
            return
        time.sleep(0.05)
    raise AssertionError(f"job {job} did not run again after its requeue")


def catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (``SigCgt`` in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = int(re.search(r"^SigCgt:\s*([0-9a-f]+)", status, re.M).group(1), 16)
    return bool(mask >> (signum - 1) & 1)


def wait_for_job_python(folder: Path, timeout: float = 300) -> int:
    """The pid of the job's Python (``submitit.core._submit <folder>``) once it catches USR2,
    i.e. in its first lines (loading submitit and the job's pickle still lie ahead)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                args = cmdline.read_bytes().split(b"\0")
            except OSError:
                continue
            # the Python itself, not the srun that started it (same arguments)
            if (
                args[0] == sys.executable.encode()
                and b"submitit.core._submit" in args
                and str(folder).encode() in args[-2]
            ):
                pid = int(cmdline.parent.name)
                while time.time() < deadline and cmdline.exists():
                    if catches(pid, signal.SIGUSR2):
                        return pid
                    time.sleep(0.002)
        time.sleep(0.01)
    raise AssertionError("the job's Python never started")


def slow_scontrol(tmp_path: Path) -> dict[str, str]:
    """An environment whose ``scontrol`` takes 3 s to exit after a requeue (SLURM has already
    SIGTERMed the job's processes by then): the requeue race of a slow ``scontrol``, every time."""
    real = shutil.which("scontrol")
    bin_dir = tmp_path / "slow_bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "scontrol"
    wrapper.write_text(f'#!/bin/bash\n{real} "$@"; rc=$?\nif [ "$1" = requeue ]; then sleep 3; fi\nexit $rc\n')
    wrapper.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_a_signalled_job_requeues_even_when_scontrol_is_slow_and_resumes_every_step_once(slurm, tmp_path):
    """Two runs with the same seed in one array; the second gets USR2 (as SLURM sends before a
    time limit) mid-run, while ``scontrol requeue`` is slow to exit."""
    sweep_dir = tmp_path / "sweep"
    t0 = time.perf_counter()
    sweep = Sweep(*RUN, "tag=ref,pre", f"hydra.sweep.dir={sweep_dir}", env=slow_scontrol(tmp_path))
    pre_dir = wait_for_train_steps(sweep_dir, 1, 2, sweep)
    job_id = sweep.job_id(1)
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    rc, out = sweep.finish()
    assert rc == 0, out[-4000:]
    print(f"signalled sweep: {time.perf_counter() - t0:.0f} s")

    ref_dir = job_dirs(sweep_dir)[0]
    assert "tag=pre" in pre_dir.name and not (pre_dir / "failed.json").exists()
    run_log = (pre_dir / "launch.log").read_text()
    assert "caught SIGUSR2" in run_log and "handing SIGUSR2 over to the job runner (requeue)" in run_log
    # the only checkpoint before the end is the one the signal made (save_every=100)
    step = int(re.search(r"resuming from \S*checkpoint-(\d+) \(step", run_log).group(1))
    assert 2 <= step < 6 and (pre_dir / "checkpoints" / f"checkpoint-{step}" / "curriculum.json").exists()
    # SLURM requeued it: the accounting has the first attempt as REQUEUED
    assert sacct_states(job_id, attempts=True) == [f"{job_id}|REQUEUED", f"{job_id}|COMPLETED"]

    records = check_run(pre_dir, steps=6, curriculum="sec")  # every step exactly once
    assert_same_records(records, read_metrics(ref_dir / "metrics.jsonl"))
    state = [
        json.loads((d / "checkpoints" / "checkpoint-6" / "curriculum.json").read_text()) for d in (ref_dir, pre_dir)
    ]
    assert state[0]["rng"] == state[1]["rng"] and state[0]["counts"] == state[1]["counts"]
    assert state[0]["q"] == pytest.approx(state[1]["q"], abs=1e-6)


def test_a_signal_to_the_batch_shell_and_another_as_the_requeued_job_starts_both_requeue(slurm, tmp_path):
    """``scancel --batch`` signals only the batch shell; ``scancel --full`` the shell, ``srun``
    and the job step, here just as the requeued attempt starts: its Python has begun (it
    catches USR2) but is still loading submitit and the job."""
    sweep_dir = tmp_path / "sweep"
    t0 = time.perf_counter()
    sweep = Sweep(*RUN, f"hydra.sweep.dir={sweep_dir}")
    run_dir = wait_for_train_steps(sweep_dir, 0, 2, sweep)
    job_id = sweep.job_id(0)
    subprocess.run(["scancel", "--batch", "--signal=USR2", job_id], check=True)
    wait_for_restart(job_id)
    wait_for_job_python(sweep_dir / ".submitit")
    subprocess.run(["scancel", "--full", "--signal=USR2", job_id], check=True)
    rc, out = sweep.finish()
    assert rc == 0, out[-4000:]
    print(f"sweep signalled twice: {time.perf_counter() - t0:.0f} s")

    assert sacct_states(job_id, attempts=True) == [f"{job_id}|REQUEUED"] * 2 + [f"{job_id}|COMPLETED"]
    run_log = (run_dir / "launch.log").read_text()
    assert run_log.count("handing SIGUSR2 over to the job runner (requeue)") == 2
    check_run(run_dir, steps=6, curriculum="sec")  # every step exactly once
    assert not (run_dir / "failed.json").exists()


def test_a_time_limit_without_requeues_left_is_an_interruption_that_a_rerun_resumes(slurm, tmp_path):
    """``slurm.max_num_timeout=0``: submitit does not requeue a timed-out job (a time limit
    under 10 min counts any USR2 as one). The run is recorded as interrupted with that reason,
    the launcher lists it as resumable, and rerunning the sweep resumes it."""
    sweep_dir = tmp_path / "sweep"
    args = (*RUN, "slurm.max_num_timeout=0", "slurm.timeout_min=5", f"hydra.sweep.dir={sweep_dir}")
    sweep = Sweep(*args)
    run_dir = wait_for_train_steps(sweep_dir, 0, 2, sweep)
    subprocess.run(["scancel", "--signal=USR2", sweep.job_id(0)], check=True)
    rc, out = sweep.finish()
    assert rc != 0
    assert "1 of 1 SLURM jobs interrupted (rerun the sweep to resume them)" in out, out[-4000:]
    assert "not requeued (timed-out too many times)" in out
    interrupted = json.loads((run_dir / "interrupted.json").read_text())
    assert "timed-out too many times" in interrupted["reason"] and interrupted["slurm_job_id"] == sweep.job_id(0)
    assert not (run_dir / "failed.json").exists()
    step = max(s for s in (int(p.name.split("-")[1]) for p in (run_dir / "checkpoints").glob("checkpoint-*")))
    assert step >= 2

    # the rerun (here with the local launcher: the same job dir) resumes it
    rerun = subprocess.run(
        [sys.executable, "-m", "sec.launch", "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    logs = rerun.stdout + rerun.stderr
    assert "was interrupted" in logs and f"checkpoint-{step} (step {step}" in logs
    check_run(run_dir, steps=6, curriculum="sec")
    assert not (run_dir / "interrupted.json").exists()
