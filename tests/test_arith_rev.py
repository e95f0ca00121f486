"""The reversed-answer task (sec/tasks/arith_rev.py, docs/testbed.md): its levels are sums of d-digit
numbers with bare prompts, its answers the sum's digits least-significant first, scored as digit
strings (the usual order scores 0), no test problem in training or pre-training, and the testbed
model pre-trains on it to write the reversed answer."""

from __future__ import annotations

import json
import re

import pytest
from omegaconf import OmegaConf
from pretrain_checks import pretrain_sums

from conftest import CONF
from sec.models import testbed
from sec.models.core import default_config
from sec.models.testbed_train import task_config
from sec.tasks.answers import extract_last_digits
from sec.tasks.arith_rev import reversed_digits
from sec.tasks.data import load_task_data
from sec.tasks.registry import get_task
from sec.tasks.rewards import puzzle_reward

TASK = OmegaConf.to_container(OmegaConf.load(CONF / "task" / "arith_rev.yaml"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return load_task_data({**TASK, "train_per_level": 300, "test_per_level": 100}, tmp_path_factory.mktemp("data"))


def reward(completion: str, row) -> float:
    return puzzle_reward(completion, row, train=True, format_reward=0.0, extraction=TASK["answer_extraction"])


def test_reversed_digits_and_the_digit_extraction():
    assert reversed_digits(369) == "963" and reversed_digits("10") == "01" and reversed_digits(0) == "0"
    with pytest.raises(ValueError, match="non-negative integers"):
        reversed_digits("-4")
    assert extract_last_digits("963") == "963" and extract_last_digits("1 then 0710 ") == "0710"
    assert extract_last_digits("no digits") is None and extract_last_digits(None) is None  # type: ignore[arg-type]


def test_levels_are_sums_by_digit_count_answered_in_reverse(data):
    digits = {1: 2, 2: 3, 3: 4, 4: 5}
    seen_order_matters = 0
    for level, rows in data.groupby("level"):
        for r in rows.itertuples():
            m = re.fullmatch(r"(\d+)\+(\d+)=", r.prompt)
            assert m and r.question == r.prompt, r.prompt
            a, b = int(m[1]), int(m[2])
            assert max(a, b) <= 10 ** digits[level]
            total = str(a + b)
            assert json.loads(r.answer)["answer"] == total[::-1]
            row = r._asdict()
            assert reward(total[::-1], row) == 1.0 and reward(f"{total[::-1]}  ", row) == 1.0
            # the sum in the usual order is wrong (unless it reads the same both ways), as is a lost zero
            assert reward(total, row) == float(total == total[::-1])
            seen_order_matters += total != total[::-1]
            if total.endswith("0"):
                assert reward(total[::-1].lstrip("0") or "x", row) == 0.0
    assert seen_order_matters > 100
    assert sorted(data.loc[data["split"] == "train", "level"].unique()) == [1, 2, 3]
    assert sorted(data.loc[data["split"] == "test", "level"].unique()) == [1, 2, 3, 4]


def test_a_level_with_another_operator_is_one_clear_error(tmp_path):
    bad = {**TASK, "levels": {**TASK["levels"], 2: {**TASK["levels"][2], "operators": ["+", "-"]}}}
    with pytest.raises(ValueError, match=r"arith_rev levels are sums: operators must be \['\+'\]"):
        get_task("arith_rev").normalize(bad)


def test_no_test_problem_is_trained_on_or_pre_trained_on_and_pre_training_writes_the_reversed_sum(data):
    test = set(data.loc[data["split"] == "test", "question"])
    assert test and not test & set(data.loc[data["split"] == "train", "question"])
    for _, a, b, answer in pretrain_sums("arith_rev", {1: 0.5, 2: 0.5}, test, steps=10, batch_size=400):
        assert answer == str(a + b)[::-1]


def test_tiny_model_pre_trains_on_the_reversed_task(tmp_path):
    """A build of the testbed model on ``arith_rev`` (shrunk to seconds) is cached under its own key."""
    cfg = default_config("testbed_lm", ["pretrain.task=arith_rev", "pretrain.mix={1: 1, 2: 0, 3: 0, 4: 0}"])
    cfg["config"].update(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    cfg["config"]["num_key_value_heads"] = 2
    cfg["pretrain"].update({"steps": 4, "batch_size": 8, "warmup_steps": 1, "decay_steps": 2, "exclude_test_items": 30})
    bare = {**cfg, "pretrain": {**cfg["pretrain"], "task": "arith_bare"}}
    assert testbed.cache_key(cfg) != testbed.cache_key(bare)
    path = testbed.materialise(cfg, tmp_path)
    record = json.loads((path / testbed.PRETRAIN_RECORD).read_text())
    assert record["mix"] == {"1": 1.0} and [s for s, _ in record["loss"]] == [2, 4]


def test_every_regime_probe_candidate_composes_into_a_run_and_a_model(monkeypatch):
    """benchmarks/regime_probe.py's presets: the run a candidate launches per level passes the run's
    config check, and its model settings are a valid testbed model config (no build)."""
    import sys

    from hydra import compose, initialize_config_dir

    from conftest import ROOT
    from sec.models.testbed_train import level_mix
    from sec.workspace import check_config

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    sys.modules.pop("regime_probe", None)
    import regime_probe

    for name, overrides in regime_probe.CANDIDATES.items():
        task, model, run = regime_probe.split_overrides(overrides)
        cfg = default_config("testbed_lm", model)
        assert set(level_mix(cfg["pretrain"], task_config(cfg["pretrain"]["task"]))) <= {1, 2, 3, 4}, name
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            job = compose(
                "config", overrides=[*regime_probe.BASE, f"task={task}", "task.train_levels=[1]", "train.steps=5", *run]
            )
        check_config(job)
        assert job.task.name == task and list(job.task.train_levels) == [1], name
