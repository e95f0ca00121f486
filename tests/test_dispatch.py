"""SLURM launcher configuration, the preemption guard and idempotent reruns: what needs no
cluster (tests/test_slurm.py runs the real SLURM jobs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import submitit
from hydra import compose, initialize_config_dir
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from omegaconf import OmegaConf

from conftest import CONF, ROOT
from sec import preempt
from sec.errors import RunInterrupted
from sec.metrics import read_metrics
from sec.models.core import publish_dir
from sec.preempt import PreemptionGuard, preempt_signal
from sec.slurm import executor_parameters, first_line
from sec.tasks.data import generate_shard

TARGET = "hydra_plugins.sec_slurm.launcher.SlurmLauncher"


def launcher(*overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", *overrides], return_hydra_config=True)
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)  # type: ignore[return-value]


def test_hydra_finds_the_launcher_plugin():
    found = {f"{c.__module__}.{c.__name__}" for c in Plugins.instance().discover(Launcher)}
    assert TARGET in found


def sbatch_script(params: dict, folder: Path) -> str:
    """The batch script submitit would submit for these launcher options, made by submitit's
    own ``_make_sbatch_string`` after the name mapping its ``AutoExecutor`` and
    ``SlurmExecutor`` apply (``timeout_min`` -> ``time``, ``mem_gb`` -> ``mem``, ``slurm_x`` ->
    ``x``): no SLURM needed. Raises ``ValueError`` for an option submitit does not know."""
    from submitit.slurm.slurm import SlurmExecutor, _convert_mem, _get_default_parameters, _make_sbatch_string

    _, update = executor_parameters(params)
    generic = SlurmExecutor._equivalence_dict()
    converted = {
        (k.removeprefix("slurm_") if k.startswith("slurm_") else generic.get(k, k)): v for k, v in update.items()
    }
    converted["mem"] = _convert_mem(converted["mem"])
    unknown = sorted(set(converted) - set(_get_default_parameters()))
    if unknown:
        raise ValueError(f"submitit's SLURM executor does not know {unknown}")
    return _make_sbatch_string(command="python -u -m submitit.core._submit x", folder=folder, **converted)


@pytest.mark.parametrize(
    ("overrides", "gpus", "cpus", "mem_gb", "delay_s"),
    [
        (["profile=tiny"], None, 1, 4, 60),
        (["profile=cpu"], None, 2, 16, 600),
        (["profile=paper", "model=smollm2_135m"], 1, 8, 32, 300),
        (["profile=paper", "model=qwen2.5_3b"], 4, 32, 256, 1200),
        (["profile=paper", "model=qwen2.5_7b"], 8, 64, 512, 1200),
    ],
)
def test_resources_come_from_the_model_preset_and_the_profile(tmp_path, overrides, gpus, cpus, mem_gb, delay_s):
    params = launcher(*overrides)
    assert params["_target_"] == TARGET
    assert (params["gpus_per_node"], params["cpus_per_task"], params["mem_gb"]) == (gpus, cpus, mem_gb)
    assert params["max_num_timeout"] > 0  # requeue after a time limit: runs resume from their checkpoint
    assert params["stderr_to_stdout"] and params["partition"] is None
    # every option is one that submitit's SLURM executor accepts, and lands in the batch script
    script = sbatch_script(params, tmp_path / "%j")
    assert f"#SBATCH --cpus-per-task={cpus}\n" in script and f"#SBATCH --mem={mem_gb}GB\n" in script
    assert f"#SBATCH --signal=USR2@{delay_s}\n" in script
    assert ("#SBATCH --gpus-per-node" in script) == (gpus is not None)
    # the setup lines (conf/hydra/launcher/slurm.yaml) are valid bash before the srun line
    check = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert script.index("srun() {") < script.index("srun --unbuffered")


@pytest.mark.slurm
def test_submitits_executor_takes_the_options_on_a_slurm_machine(slurm):
    init, update = executor_parameters(launcher("profile=tiny"))
    executor = submitit.AutoExecutor(cluster="slurm", **{**init, "folder": "/tmp/unused/%j"})
    executor.update_parameters(**update)


def test_placement_comes_from_the_local_config_and_the_command_line():
    params = launcher("local=example")
    assert (params["partition"], params["account"], params["qos"], params["constraint"]) == (
        "gpu",
        "my_project",
        "normal",
        "h100",
    )
    assert params["additional_parameters"] == {"mail-type": "FAIL"}
    assert launcher("local=example", "slurm.partition=debug", "slurm.timeout_min=30")["partition"] == "debug"
    assert launcher("slurm.timeout_min=30")["timeout_min"] == 30


def test_the_local_launcher_stays_the_default():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
    assert "rerun_failed" in cfg.hydra.job.config.override_dirname.exclude_keys


def test_a_failed_job_is_reported_by_its_error_line(tmp_path):
    """The launcher's one-line report of a job that died, from a real submitit failure (a data
    shard job with a broken task config)."""
    executor = submitit.AutoExecutor(folder=tmp_path / "%j", cluster="local")
    executor.update_parameters(timeout_min=2)
    job = executor.submit(generate_shard, {"name": "broken"}, tmp_path, "test", 1)
    with pytest.raises(submitit.core.utils.FailedJobError) as failure:
        job.result()
    assert first_line(failure.value).startswith("ValueError: unknown task 'broken': cannot import module")
    assert first_line(RuntimeError("one\ntwo")) == "RuntimeError: one"
    # submitit's handler raising inside the job (a cancel that lands after it is installed)
    in_job = submitit.core.utils.FailedJobError(
        "Job (task=0) failed during processing with trace:\n----------------------\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\nsubmitit.core.utils.UncompletedJobError: Job not requeued because: timed-out and '
        "not checkpointable.\n----------------------\nYou can check full logs with 'job.stderr(0)'"
    )
    assert first_line(in_job) == (
        "UncompletedJobError: the job was stopped and not requeued (timed-out and not checkpointable)"
    )

    killed = executor.submit(time.sleep, 120)  # a job cancelled while it runs: no result at all
    time.sleep(2)
    killed.cancel()
    with pytest.raises(submitit.core.utils.UncompletedJobError) as failure:
        killed.result()
    # killed before or after submitit's signal handlers are installed (machine load decides)
    assert first_line(failure.value) in {
        "UncompletedJobError: the job ended without a result",
        "UncompletedJobError: the job was stopped and not requeued (timed-out and not checkpointable)",
    }


def test_guard_defers_the_job_runners_handler_until_the_checkpoint_is_saved(guard_state):
    calls = []

    def job_runner(signum, frame):  # stands for submitit's checkpoint-and-requeue handler
        calls.append(signum)
        # SLURM answers `scontrol requeue` with SIGTERM to the job's processes, scontrol
        # included: it must survive that and exit normally
        scontrol = subprocess.run(["sh", "-c", "kill -TERM $$; echo requeued"], capture_output=True, text=True)
        calls.append(scontrol.returncode)
        os.kill(os.getpid(), signal.SIGUSR2)  # another signal meanwhile (scancel --full sends three)
        raise SystemExit(-1)  # submitit exits after the requeue

    signal.signal(signal.SIGUSR2, job_runner)
    with PreemptionGuard() as outer, PreemptionGuard() as guard:  # nested guards share one state
        assert guard.active and not guard.requested
        os.kill(os.getpid(), signal.SIGUSR2)
        assert guard.requested and outer.requested and calls == []  # only noted: the step goes on
        os.kill(os.getpid(), signal.SIGUSR2)  # a second signal changes nothing
        with pytest.raises(SystemExit):
            guard.hand_over()
        assert calls == [signal.SIGUSR2, 0]  # run once; scontrol was not killed
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN  # SIGTERM is back
    # after a hand-over, late signals stay swallowed: submitit's handler must not run twice
    assert signal.getsignal(signal.SIGUSR2) is preempt._note_signal


def test_a_hand_over_that_does_not_requeue_is_an_interruption_with_submitits_reason(guard_state):
    from submitit.core.utils import UncompletedJobError

    def job_runner(signum, frame):  # submitit after the last time-limit requeue (max_num_timeout)
        raise UncompletedJobError("Job not requeued because: timed-out too many times.")

    signal.signal(signal.SIGUSR2, job_runner)
    with PreemptionGuard() as guard:
        os.kill(os.getpid(), signal.SIGUSR2)
        with pytest.raises(RunInterrupted, match=r"not requeued \(timed-out too many times\).*a rerun resumes"):
            guard.hand_over()


def test_guard_stays_out_of_the_way_outside_a_job(guard_state):
    signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    with PreemptionGuard() as guard:
        assert not guard.active and signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL
    with pytest.raises(RuntimeError, match="without a received preemption signal"):
        guard.hand_over()


def test_a_signal_while_the_jobs_python_starts_is_noted_not_fatal(tmp_path):
    """``python -m sec.preempt -m <module>`` (how SLURM jobs start) notes USR2 from its first
    line; the guard entered later sees it. Without it the default action kills the process."""
    script = (
        "import os, signal, time\n"
        "os.kill(os.getpid(), signal.SIGUSR2)  # before anything binds a handler\n"
        "time.sleep(0.1)\n"
        "signal.signal(signal.SIGUSR2, lambda *a: None)  # submitit binds its handler\n"
        "from sec.preempt import PreemptionGuard\n"
        "with PreemptionGuard() as g:\n"
        "    print('requested', g.requested)\n"
    )
    (tmp_path / "job_body.py").write_text(script)
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}:{ROOT}")
    cmd = [sys.executable, "-u", "-m", "sec.preempt", "-u", "-m", "job_body"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "requested True", r.stderr
    bare = subprocess.run([sys.executable, "-m", "job_body"], cwd=ROOT, env=env, capture_output=True, timeout=60)
    assert bare.returncode == -signal.SIGUSR2


def test_preempt_signal_follows_submitit(monkeypatch):
    assert preempt_signal() == signal.SIGUSR2
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "USR1")
    assert preempt_signal() == signal.SIGUSR1
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "NOPE")
    with pytest.raises(ValueError, match="SUBMITIT_PREEMPT_SIGNAL"):
        preempt_signal()


def run_sweep(*args: str, cache: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if cache:
        env["SEC_CACHE_DIR"] = cache
    return subprocess.run(
        [sys.executable, "-m", "sec.launch", "-m", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def test_a_failed_run_is_recorded_and_rerun_only_on_request(tmp_path):
    sweep = tmp_path / "sweep"
    args = ("profile=tiny", "task=countdown", "curriculum=sec", "train.steps=1", f"hydra.sweep.dir={sweep}")
    # attempt 1 fails: the data cache is a file, not a directory
    broken_cache = tmp_path / "not_a_dir"
    broken_cache.write_text("")
    r = run_sweep(*args, cache=str(broken_cache))
    assert r.returncode != 0
    (job,) = [p for p in sweep.iterdir() if p.is_dir()]
    failed = json.loads((job / "failed.json").read_text())
    assert str(broken_cache) in failed["error"] and "Traceback" in failed["traceback"]
    assert "slurm_job_id" not in failed and not (job / "done.json").exists()

    # attempt 2, with a working cache: the failed run is not run again without being asked
    r = run_sweep(*args)
    assert r.returncode != 0 and "failed before" in r.stderr and "rerun_failed=true" in r.stderr
    assert json.loads((job / "failed.json").read_text()) == failed

    # attempt 3 asks for it: same job dir (the flag is not in its name), the run finishes
    r = run_sweep(*args, "rerun_failed=true")
    assert r.returncode == 0, r.stderr[-3000:]
    assert [p for p in sweep.iterdir() if p.is_dir()] == [job]
    assert (job / "done.json").exists() and not (job / "failed.json").exists()
    assert [r["step"] for r in read_metrics(job / "metrics.jsonl") if r["kind"] == "train"] == [1]


def test_sweep_jobs_sharing_a_cache_publish_one_model(tmp_path):
    """Two jobs that materialise the same model at once: the second keeps the first's copy."""
    target = tmp_path / "models" / "tiny"
    for i in (1, 2):
        tmp = tmp_path / f"tiny.tmp{i}"
        tmp.mkdir()
        (tmp / "config.json").write_text(str(i))
        publish_dir(tmp, target)
    assert (target / "config.json").read_text() == "1" and not (tmp_path / "tiny.tmp2").exists()
    occupied = tmp_path / "occupied"
    (occupied / "other").mkdir(parents=True)  # a non-empty dir that holds no model
    (tmp_path / "tiny.tmp3").mkdir()
    with pytest.raises(OSError):
        publish_dir(tmp_path / "tiny.tmp3", occupied)
