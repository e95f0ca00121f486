"""Sums levelled by their carries (sec/tasks/arith_carry.py, docs/testbed.md): every item of a level
carries exactly that many times, items are addressed by index, the levels' errors are one line, no
test problem is trained or pre-trained on, and pre-training draws through the task's filter."""

from __future__ import annotations

import json
import re

import pytest
from omegaconf import OmegaConf
from pretrain_checks import pretrain_sums

from conftest import CONF
from sec.tasks.arith_carry import CarryFiltered, count_carries
from sec.tasks.data import load_task_data
from sec.tasks.registry import get_task
from sec.tasks.rewards import puzzle_reward

TASK = OmegaConf.to_container(OmegaConf.load(CONF / "task" / "arith_carry.yaml"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return load_task_data({**TASK, "train_per_level": 200, "test_per_level": 100}, tmp_path_factory.mktemp("data"))


def test_count_carries():
    assert [count_carries(a, b) for a, b in [(0, 0), (12, 34), (57, 68), (999, 1), (950, 50), (5, 5)]] == [
        0, 0, 2, 3, 2, 1,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="non-negative"):
        count_carries(-1, 3)


def test_levels_carry_exactly_their_number_of_times_and_score_the_usual_sum(data):
    for level, rows in data.groupby("level"):
        for r in rows.itertuples():
            m = re.fullmatch(r"(\d+)\+(\d+)=", r.prompt)
            assert m and r.question == r.prompt, r.prompt
            a, b = int(m[1]), int(m[2])
            assert count_carries(a, b) == TASK["levels"][level]["carries"] == level - 1
            assert json.loads(r.answer)["answer"] == str(a + b)
            row = r._asdict()
            assert puzzle_reward(str(a + b), row, train=True, format_reward=0.0, extraction="last_number") == 1.0
            assert puzzle_reward(str(a + b + 1), row, train=True, format_reward=0.0, extraction="last_number") == 0.0
    assert sorted(data.loc[data["split"] == "test", "level"].unique()) == [1, 2, 3, 4]
    test = set(data.loc[data["split"] == "test", "question"])
    assert not test & set(data.loc[data["split"] == "train", "question"])


def test_items_are_addressed_by_index_and_a_block_without_one_raises():
    task = get_task("arith_carry")
    ds = task.make_dataset(TASK["levels"][4], 7)
    assert ds[123] == task.make_dataset(TASK["levels"][4], 7)[123]
    none = CarryFiltered(ds.dataset, carries=3, scan=1)  # one source item per block: most have no carry
    with pytest.raises(LookupError, match="no sum with 3 carries"):
        [none[i] for i in range(200)]


@pytest.mark.parametrize(
    "change,message",
    [
        ({"carries": -1}, "'carries' must be an int >= 0"),
        ({"carries": 4}, "4 carries need more than 3 digits"),
        ({"operators": ["+", "-"]}, "arith_carry levels are two-term sums"),
        ({"max_terms": 3}, "arith_carry levels are two-term sums"),
    ],
)
def test_a_bad_level_is_one_clear_error(change, message):
    bad = {**TASK, "levels": {**TASK["levels"], 2: {**TASK["levels"][2], **change}}}
    with pytest.raises(ValueError, match=re.escape(message)):
        get_task("arith_carry").normalize(bad)
    missing = {**TASK, "levels": {**TASK["levels"], 2: {k: v for k, v in TASK["levels"][2].items() if k != "carries"}}}
    with pytest.raises(ValueError, match="'carries' must be an int"):
        get_task("arith_carry").normalize(missing)


def test_pre_training_draws_through_the_carry_filter_and_never_a_test_problem(data):
    test = set(data.loc[data["split"] == "test", "question"])
    for level, a, b, answer in pretrain_sums("arith_carry", {1: 0.5, 3: 0.5}, test, steps=5, batch_size=200):
        assert count_carries(a, b) == level - 1 and answer == str(a + b)
