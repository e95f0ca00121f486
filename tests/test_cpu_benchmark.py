"""The CPU benchmark (README "CPU benchmark"): task=arith, the last-number answer extraction,
its experiment / profile / task x model configs, the per-level pass@1 script, and its one-command
sweep + report on the tiny profile (real processes, Hydra's joblib launcher)."""

from __future__ import annotations

import json
import operator
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import CONF
from sec.tasks import puzzle_reward
from sec.tasks.data import load_task_data
from sec.tasks.rewards import extract_answer, extract_last_number
from sec.workspace import ConfigError, check_config

ROOT = CONF.parent


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def arith(answer: str) -> dict:
    return {"task": "arith", "answer": json.dumps({"generator": "basic_arithmetic", "answer": answer})}


# ---------------------------------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5 - 9 = -4", "-4"),
        ("\\boxed{-4}", "-4"),
        ("9-3", "3"),  # a binary minus is not a sign
        ("the sum is 12.5.", "12.5"),
        ("12 + 34 = 46. Done", "46"),
        ("x2 then 7", "7"),
        ("no digits here", None),
        ("", None),
        (None, None),
        (17, None),
    ],
)
def test_last_number(text, expected):
    assert extract_last_number(text) == expected
    assert extract_answer(text, "last_number") == expected


def test_unknown_extraction_is_one_clear_error():
    with pytest.raises(ValueError, match="answer extraction must be one of"):
        extract_answer("4", "first_number")
    with pytest.raises(ValueError, match="answer extraction"):
        puzzle_reward("4", arith("4"), train=True, extraction="first_number", format_reward=0.0)


def test_arith_reward_by_extraction():
    rec = arith("-4")
    assert puzzle_reward("5 - 9 = -4", rec, train=False, extraction="last_number", format_reward=0.0) == 1.0
    assert (
        puzzle_reward("5 - 9 = -4", rec, train=False, format_reward=0.0, extraction="boxed") == 0.0
    )  # the paper's rule wants \boxed{}
    assert puzzle_reward("\\boxed{-4}", rec, train=False, format_reward=0.0, extraction="boxed") == 1.0
    assert puzzle_reward("5 - 9 = 4", rec, train=False, extraction="last_number", format_reward=0.0) == 0.0
    # the value, as a reader reads it (docs/rewards.md): -4.0 is -4, -4.5 is not
    assert puzzle_reward("-4.0", rec, train=False, extraction="last_number", format_reward=0.0) == 1.0
    assert puzzle_reward("-4.5", rec, train=False, extraction="last_number", format_reward=0.0) == 0.0
    assert puzzle_reward("5 - 9 = 4", rec, train=True, format_reward=0.1, extraction="last_number") == 0.1
    assert puzzle_reward("no number", rec, train=True, format_reward=0.1, extraction="last_number") == 0.0


# ---------------------------------------------------------------------------------------- the task


def test_arith_levels_have_their_parameters_and_correct_answers(tmp_path: Path):
    task = OmegaConf.to_container(compose_cfg("task=arith", "task.train_per_level=30", "task.test_per_level=10").task)
    df = load_task_data(task, tmp_path)
    assert sorted(df["level"].unique()) == [1, 2, 3, 4, 5]
    assert (df[df["split"] == "test"].groupby("level").size() == 10).all()
    assert sorted(df.loc[df["split"] == "train", "level"].unique()) == [1, 2, 3, 4]
    ops = {"+": operator.add, "-": operator.sub}
    for _, row in df.iterrows():
        meta = json.loads(row["metadata"])
        tokens = meta["expression"].split()
        numbers, signs = [int(t) for t in tokens[::2]], tokens[1::2]
        params = task["levels"][int(row["level"])]
        assert len(numbers) == params["min_terms"] == params["max_terms"]
        # reasoning-gym 0.1.x draws the terms of "d digits" uniformly from [0, 10^d]
        assert all(0 <= n <= 10 ** params["min_digits"] for n in numbers)
        assert params["min_digits"] == 1 or any(n >= 10 for n in numbers) or len(numbers) == 2
        assert set(signs) <= set(params["operators"])
        value = numbers[0]
        for sign, n in zip(signs, numbers[1:], strict=True):
            value = ops[sign](value, n)
        assert json.loads(row["answer"])["answer"] == str(value)
        assert row["question"].endswith("Give only the final answer inside \\boxed{}.")
        assert puzzle_reward(f"so it is {value}", row, train=False, extraction="last_number", format_reward=0.0) == 1.0
    assert not set(df.loc[df["split"] == "train", "question"]) & set(df.loc[df["split"] == "test", "question"])


# ---------------------------------------------------------------------------------------- configs


def test_benchmark_configs():
    cfg = compose_cfg("experiment=cpu_arith", "profile=cpu_bench", "curriculum=sec")
    check_config(cfg)
    assert cfg.task.name == "arith" and cfg.model.name == "smollm2_135m" and cfg.tag == "cpu_arith"
    assert cfg.task.answer_extraction == "last_number" and cfg.task.format_reward == 0.0
    assert cfg.train.temperature == cfg.eval.temperature == 0.3
    assert cfg.curriculum.alpha == 0.5 and cfg.curriculum.tau == 0.2  # conf/task_model/arith_smollm2_135m.yaml
    assert cfg.train.steps == 40 and cfg.eval.max_new_tokens == cfg.train.max_completion_length == 16
    assert list(cfg.task.train_levels) == [1, 2, 3, 4] and list(cfg.task.ood_levels) == [5]
    # the paper's tasks keep the paper's answer rule
    for task in ("countdown", "zebra", "arc", "math", "puzzles"):
        assert compose_cfg(f"task={task}").task.answer_extraction == "boxed"
    with pytest.raises(ConfigError, match=r"task\.answer_extraction='first_number'"):
        check_config(compose_cfg("task=arith", "task.answer_extraction=first_number"))


def test_level_pass_rates_script_runs_the_evaluation(tmp_path: Path):
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "level_pass_rates.py"),
            "experiment=cpu_arith",
            "profile=tiny",
            f"paths.cache_dir={tmp_path}",
            "--problems",
            "2",
            "--k",
            "2",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("| level_") or ln.startswith("| id")]
    assert [ln.split("|")[1].strip() for ln in lines] == [*(f"level_{k}" for k in range(1, 6)), "id"]
    assert "2 x 2" in lines[0] and "answer = last_number" in r.stdout


# ---------------------------------------------------------------------------------------- the sweep


@pytest.mark.slow
def test_benchmark_command_runs_sweep_and_report(tmp_path: Path):
    """sweeps/cpu_arith.sh on the tiny profile: 2 curricula x 2 seeds, two jobs at a time, then the
    report with the per-run and per-curriculum lines (first/last pass@1, wasted rollouts)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "PY": sys.executable,
        "SWEEP": str(tmp_path / "sweep"),
        "REPORT": str(tmp_path / "report"),
        "PROFILE": "tiny",
        "SEC_CACHE_DIR": str(tmp_path / "cache"),
        "HOME": str(tmp_path),
    }

    def bench() -> subprocess.CompletedProcess:
        args = ["curriculum=random,sec", "seed=0,1", "train.steps=3", "eval.every=3"]
        return subprocess.run(
            ["bash", "sweeps/cpu_arith.sh", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=900
        )

    r = bench()
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    per_run = pd.read_csv(tmp_path / "report" / "per_run.csv")
    assert sorted(zip(per_run["curriculum"], per_run["seed"], strict=True)) == [
        ("random", 0), ("random", 1), ("sec", 0), ("sec", 1)
    ]  # fmt: skip
    assert (per_run["steps"] == 3).all() and per_run["done"].all()
    assert per_run["wasted"].between(0, 1).all() and per_run["id pass@1 start"].notna().all()
    per_cur = pd.read_csv(tmp_path / "report" / "per_curriculum.csv")
    assert set(per_cur["curriculum"]) == {"random", "sec"} and (per_cur["seeds"] == 2).all()
    paired = pd.read_csv(tmp_path / "report" / "paired_vs_random.csv")
    assert set(paired["curriculum"]) == {"sec"} and (paired["seeds"] == 2).all()
    joined = per_run.pivot(index="seed", columns="curriculum", values="id pass@1 final")
    row = paired[paired["metric"] == "id pass@1 final"].iloc[0]
    assert row["diff mean"] == pytest.approx((joined["sec"] - joined["random"]).mean(), abs=1e-5)
    index = (tmp_path / "report" / "index.md").read_text()
    assert "## Per curriculum and per run" in index and "| wasted |" in index
    assert (tmp_path / "report" / "figure3.png").exists()
    # a rerun finds every run finished and only remakes the report
    again = bench()
    assert again.returncode == 0 and "is finished" in again.stdout + again.stderr
