"""SLURM dispatch against a real cluster: the local single-node one of
``scripts/slurm_local.sh start`` (``.ci/run`` starts it). Without a running SLURM these tests
are skipped, except in CI (``CI=true``), where they fail.

Real `python -m sec.launch -m hydra/launcher=slurm` sweeps on the tiny profile: the 2 x 2
sweep as one job array with the same outputs as a local run, failing jobs reported with their
logs while the others finish, and data generation as array tasks. Preemption, requeue and
time limits: tests/test_slurm_faults.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from test_launch import check_run

from conftest import CONF, ROOT
from sec.metrics import read_metrics, reproducible
from sec.tasks.data import cache_key, load_task_data
from sec.workspace import task_components

pytestmark = pytest.mark.slurm

SWEEP_2X2 = ("profile=tiny", "task=zebra,arc", "curriculum=sec,random")


def sec_launch(*args: str, threads: int | None = None, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python -m sec.launch *args`` in the background (its jobs inherit the environment)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return subprocess.Popen(
        [sys.executable, "-m", "sec.launch", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: int = 900) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def submitted(output: str) -> dict[int, str]:
    """Hydra job number -> SLURM job id, from the launcher's log lines."""
    return {int(n): jid for n, jid in re.findall(r"#(\d+) : .*? -> SLURM job (\S+) \(log", output)}


def sacct_states(job: str, attempts: bool = False, timeout: float = 60) -> list[str]:
    """``JobID|State`` lines of a job (or of each array task), once none is still running:
    submitit hands the result over a moment before SLURM records the job step's end."""
    cmd = ["sacct", "-n", "-X", "-P", "-j", job, "-o", "JobID,State", *(["-D"] if attempts else [])]
    deadline = time.time() + timeout
    while True:
        lines = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
        if time.time() > deadline or not any(s.endswith(("|RUNNING", "|COMPLETING", "|PENDING")) for s in lines):
            return lines
        time.sleep(1)


def comparable(records: list[dict]) -> list[dict]:
    """Metrics records without the fields that differ between two runs (``sec.metrics.RUN_VARYING``)."""
    return [reproducible(r) for r in records]


def assert_same_records(a: list[dict], b: list[dict]) -> None:
    a, b = comparable(a), comparable(b)
    assert [(r["step"], r["kind"]) for r in a] == [(r["step"], r["kind"]) for r in b]
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            if isinstance(x[k], float):
                assert x[k] == pytest.approx(y[k], rel=1e-4, abs=1e-6), (x["step"], x["kind"], k)
            else:
                assert x[k] == y[k], (x["step"], x["kind"], k)


def job_dirs(sweep: Path) -> dict[int, Path]:
    return {int(p.name.split("_", 1)[0]): p for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit()}


def test_sweep_2x2_is_one_array_with_local_outputs_and_failures_are_reported(slurm, tmp_path):
    sweep, local = tmp_path / "slurm", tmp_path / "local"
    t0 = time.perf_counter()
    proc = sec_launch("-m", "hydra/launcher=slurm", *SWEEP_2X2, f"hydra.sweep.dir={sweep}")
    # meanwhile its job 0 with the local launcher, one thread as the 1-CPU SLURM jobs
    # (test_launch.py runs the whole sweep locally)
    rc_local, out_local = finish(
        sec_launch("-m", "profile=tiny", "task=zebra", "curriculum=sec", f"hydra.sweep.dir={local}", threads=1)
    )
    assert rc_local == 0, out_local[-4000:]
    rc, out = finish(proc)
    assert rc == 0, out[-4000:]
    print(f"2x2 on SLURM (and locally meanwhile): {time.perf_counter() - t0:.0f} s")

    # 4 real SLURM jobs, one array, each finished in its own run dir
    jobs = submitted(out)
    assert sorted(jobs) == [0, 1, 2, 3]
    arrays = {jid.split("_")[0] for jid in jobs.values()}
    assert len(arrays) == 1 and sorted(int(j.split("_")[1]) for j in jobs.values()) == [0, 1, 2, 3]
    assert sorted(sacct_states(arrays.pop())) == sorted(f"{jid}|COMPLETED" for jid in jobs.values())

    ran, ref = job_dirs(sweep), job_dirs(local)
    assert sorted(ran) == [0, 1, 2, 3] and sorted(ref) == [0]
    for n, run in ran.items():
        task = "zebra" if "task=zebra" in run.name else "arc"
        curriculum = "sec" if "curriculum=sec" in run.name else "random"
        records = check_run(run, steps=2, curriculum=curriculum)
        # the job ran the config a local run composes
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("config", overrides=["profile=tiny", f"task={task}", f"curriculum={curriculum}"])
        assert (run / "config.yaml").read_text() == OmegaConf.to_yaml(cfg, resolve=True)
        if n in ref:  # and wrote what the local run wrote
            assert run.name == ref[n].name
            assert_same_records(records, read_metrics(ref[n] / "metrics.jsonl"))
            assert (run / "config.yaml").read_text() == (ref[n] / "config.yaml").read_text()
            assert json.loads((run / "done.json").read_text()) == json.loads((ref[n] / "done.json").read_text())

    check_second_sweep_reports_failures(sweep, ran[0], tmp_path)


def check_second_sweep_reports_failures(sweep: Path, finished: Path, tmp_path: Path) -> None:
    """A second sweep into the same dir, with a data cache that is a file: job 0 (zebra, sec)
    finished before and is skipped, job 1 is rejected (sec_2d needs a multi-task task), jobs 2
    and 3 fail when they load their data; the failures are reported with their logs."""
    before = (finished / "metrics.jsonl").read_text()
    broken_cache = tmp_path / "cache_is_a_file"
    broken_cache.write_text("")
    second = ("profile=tiny", "task=zebra,puzzles", "curriculum=sec,sec_2d", f"hydra.sweep.dir={sweep}")
    rc, out = finish(sec_launch("-m", "hydra/launcher=slurm", *second, env={"SEC_CACHE_DIR": str(broken_cache)}))
    assert rc != 0
    assert "2 of 4 SLURM jobs failed, 1 rejected as invalid configs (the others finished)" in out, out[-4000:]
    report = {int(n): line for n, line in re.findall(r"^\s+#(\d) (.*)$", out, flags=re.M)}
    assert sorted(report) == [1, 2, 3]
    assert "curriculum=sec_2d" in report[1] and "rejected: curriculum=sec_2d" in report[1]
    assert (next(sweep.glob("1_curriculum=sec_2d*")) / "rejected.json").exists()
    for n in (2, 3):
        line = report[n]
        assert "task=puzzles" in line and str(broken_cache) in line
        log_file = Path(re.search(r"log (\S+_log\.out)", line).group(1))
        assert log_file.exists() and "Traceback" in log_file.read_text()
        run_dir = next(p for p in sweep.iterdir() if p.name.startswith(f"{n}_") and "task=puzzles" in p.name)
        assert line.endswith(f"run dir {run_dir})")
        failed = json.loads((run_dir / "failed.json").read_text())
        assert str(broken_cache) in failed["error"] and failed["log"] == str(log_file)
        assert failed["slurm_job_id"] == submitted(out)[n]
    assert (finished / "metrics.jsonl").read_text() == before
    log_file = Path(re.search(r"log (\S+_log\.out)", submitted_line(out, 0)).group(1))
    assert "is finished (done.json exists): skipped" in log_file.read_text()


def submitted_line(output: str, n: int) -> str:
    return next(line for line in output.splitlines() if f"#{n} : " in line and "SLURM job" in line)


def test_data_generation_as_a_slurm_array(slurm, tmp_path):
    env = dict(os.environ, SEC_CACHE_DIR=str(tmp_path / "cache"))
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "sec.data", "--tasks", "countdown", "--profile", "tiny", "--slurm"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    print(f"data shards on SLURM: {time.perf_counter() - t0:.0f} s")
    logs = out.stdout + out.stderr
    # 4 test shards, then 3 train shards: two arrays
    shard_jobs = re.findall(r"countdown (test|train) L(\d) -> SLURM job (\d+)_(\d+)", logs)
    assert sorted((s, int(lv)) for s, lv, _, _ in shard_jobs) == sorted(
        [("test", lv) for lv in (1, 2, 3, 4)] + [("train", lv) for lv in (1, 2, 3)]
    )
    assert len({(s, a) for s, _, a, _ in shard_jobs}) == 2
    assert logs.count("(resumed)") == 7  # the sets were assembled from the array's shards

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        task = task_components(compose("config", overrides=["task=countdown", "profile=tiny"]).task)[0]
    made = pd.read_parquet(tmp_path / "cache" / "data" / "countdown" / f"{cache_key(task)}.parquet")
    local = load_task_data(task, tmp_path / "local")
    pd.testing.assert_frame_equal(made, local)  # the same set as a local generation
