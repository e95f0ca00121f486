"""Puzzle generation, prompts and the parquet cache (SEC.md §2), on tiny sizes."""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from task_configs import CONFIGS, COUNTDOWN_LEVELS

import sec.tasks.generation as generation
import sec.tasks.timed_items as timed_items
from sec.tasks import (
    RECORD_COLUMNS,
    TINYZERO_TEMPLATE,
    cache_key,
    derive_seed,
    generate_items,
    is_correct,
    load_task_data,
    puzzle_reward,
    render_prompt,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("task-data")


@pytest.fixture(scope="module")
def frames(data_root: Path) -> dict[str, pd.DataFrame]:
    return {name: load_task_data(cfg, data_root) for name, cfg in CONFIGS.items()}


def meta(row: pd.Series) -> dict[str, Any]:
    return json.loads(row["metadata"])


# ------------------------------------------------------------------------------------- content / schema


def test_schema_and_counts(frames: dict[str, pd.DataFrame]) -> None:
    for name, df in frames.items():
        cfg = CONFIGS[name]
        assert tuple(df.columns) == RECORD_COLUMNS
        assert df["id"].is_unique
        assert str(df["level"].dtype) == "int64"
        counts = df.groupby(["split", "level"]).size().to_dict()
        expected = {("train", k): cfg["train_per_level"] for k in cfg["train_levels"]}
        expected |= {("test", k): cfg["test_per_level"] for k in cfg["test_levels"]}
        assert counts == expected
        assert (df["task"] == name).all()
        for _, row in df.iterrows():
            assert row["id"].startswith(f"{name}/{row['split']}/L{row['level']}/")
            assert row["prompt"] == render_prompt(row["question"])
            assert row["prompt"].startswith("A conversation between User and Assistant.")
            assert row["prompt"].endswith("\nAssistant: Let me solve this step by step.")
            assert json.loads(row["answer"])["answer"]
            assert isinstance(meta(row), dict)


def test_template() -> None:
    assert render_prompt("Q?") == TINYZERO_TEMPLATE.replace("{question}", "Q?")
    assert "\nUser: Q?\nAssistant: Let me solve this step by step." in render_prompt("Q?")


def test_countdown_levels_and_prompt(frames: dict[str, pd.DataFrame]) -> None:
    for _, row in frames["countdown"].iterrows():
        md = meta(row)
        assert len(md["numbers"]) == row["level"] + 2  # levels 1-4 = 3/4/5/6 numbers
        assert all(1 <= x <= 100 for x in md["numbers"])
        assert 1 <= md["target"] <= 1000
        assert row["question"] == (
            f"Using the numbers {md['numbers']}, create an equation that equals {md['target']}. You can use "
            "basic arithmetic operations (+, -, *, /) and each number can only be used once. Show your work "
            "and put your final answer in \\boxed{}, e.g. \\boxed{(1 + 2) / 3}."
        )
    level2 = frames["countdown"].query("level == 2")
    assert all(len(meta(r)["numbers"]) == 4 for _, r in level2.iterrows())


def test_zebra_levels_and_prompt(frames: dict[str, pd.DataFrame]) -> None:
    for _, row in frames["zebra"].iterrows():
        k = row["level"] + 2
        assert meta(row)["difficulty"] == {"num_people": k, "num_characteristics": k}
        assert f"There are {k} houses" in row["question"]
        assert row["question"].endswith(
            "? Provide only the name of the person as your final answer in \\boxed{}, e.g. \\boxed{Alice}."
        )
        assert "??" not in row["question"]
        assert row["question"].count("Provide only the name") == 1


def test_zebra_ood_level(tmp_path: Path) -> None:
    level = CONFIGS["zebra"]["levels"][4]
    (row,) = generate_items("zebra", 4, level, 1, 12, "test", progress=False)
    assert json.loads(row["metadata"])["difficulty"] == {"num_people": 6, "num_characteristics": 6}
    assert "There are 6 houses" in row["question"]
    answer = json.loads(row["answer"])
    assert is_correct("zebra", answer["answer"], answer)


def test_arc_levels_and_prompt(frames: dict[str, pd.DataFrame]) -> None:
    for _, row in frames["arc"].iterrows():
        md = meta(row)
        size = 10 * row["level"]  # levels 1-4 = grid length 10/20/30/40
        assert md["size"] == size
        assert len(md["test_example"]["input"]) == size
        assert len(md["train_examples"]) == 3
        assert row["question"].count("Example ") == 3
        assert row["question"].endswith(
            " ".join(map(str, md["test_example"]["input"]))
            + "\n\nYour final answer must be placed in \\boxed{} and should be just the test output grid itself."
        )
        assert "Your final answer should be" not in row["question"]


def test_reference_answers_are_correct(frames: dict[str, pd.DataFrame]) -> None:
    for df in frames.values():
        for _, row in df.iterrows():
            answer = json.loads(row["answer"])
            assert is_correct(row["task"], answer["answer"], answer), row["id"]
            completion = f"reasoning ... \\boxed{{{answer['answer']}}}"
            assert puzzle_reward(completion, row, train=False, format_reward=0.1, extraction="boxed") == 1.0
            assert puzzle_reward(
                completion + " \\boxed{0}", row, train=True, format_reward=0.1, extraction="boxed"
            ) == pytest.approx(0.1)


# ------------------------------------------------------------------------------- determinism / splits


def test_deterministic(frames: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    for name, cfg in CONFIGS.items():
        again = load_task_data(copy.deepcopy(cfg), tmp_path / "fresh")
        pd.testing.assert_frame_equal(again, frames[name])


def test_derive_seed_is_stable() -> None:
    # a change here silently changes every data set: bump DATA_FORMAT_VERSION with it
    assert derive_seed(1, "countdown", 1, "train") == 2818976228530231995
    seeds = {derive_seed(1, t, k, s) for t in ("countdown", "arc") for k in (1, 2) for s in ("train", "test")}
    assert len(seeds) == 8
    assert derive_seed(2, "countdown", 1, "train") != derive_seed(1, "countdown", 1, "train")


def test_train_test_disjoint(frames: dict[str, pd.DataFrame]) -> None:
    for df in frames.values():
        train = set(df.loc[df["split"] == "train", "question"])
        test = set(df.loc[df["split"] == "test", "question"])
        assert not train & test


def test_excluded_questions_are_dropped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    args = ("arc", 1, CONFIGS["arc"]["levels"][1], 4, 5, "train")
    base = generate_items(*args, progress=False)
    caplog.set_level(logging.INFO, logger="sec.tasks")
    out = generate_items(*args, exclude_questions={base[1]["question"]}, progress=False)
    assert len(out) == 4
    assert base[1]["question"] not in {r["question"] for r in out}
    assert [r["question"] for r in out[:3]] == [base[i]["question"] for i in (0, 2, 3)]
    assert "dropped 1 items whose question equals a test question" in caplog.text


# ------------------------------------------------------------------------------------------ the cache


def test_cache_hit_does_not_regenerate(
    frames: dict[str, pd.DataFrame], data_root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("regenerated despite a cached file")

    monkeypatch.setattr(generation, "generate_items", boom)
    monkeypatch.setattr(timed_items, "_make_dataset", boom)
    caplog.set_level(logging.INFO, logger="sec.tasks")
    for name, cfg in CONFIGS.items():
        pd.testing.assert_frame_equal(load_task_data(cfg, data_root), frames[name])
        path = data_root / name / f"{cache_key(cfg)}.parquet"
        assert path.is_file()
        assert f"cache hit {path}" in caplog.text
    leftovers = [p for p in data_root.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers


def test_cache_key() -> None:
    cfg = copy.deepcopy(CONFIGS["countdown"])
    key = cache_key(cfg)
    assert len(key) == 16
    changed = copy.deepcopy(cfg)
    changed["levels"][2]["max_value"] = 99
    assert cache_key(changed) != key
    for field, value in [("train_per_level", 6), ("test_per_level", 4), ("seed", 12), ("test_levels", [1, 2])]:
        assert cache_key({**cfg, field: value}) != key, field
    # level keys as str, extra keys and OmegaConf containers do not matter
    as_str = {**cfg, "levels": {str(k): v for k, v in cfg["levels"].items()}, "format_reward": 0.5}
    assert cache_key(as_str) == key
    omegaconf = pytest.importorskip("omegaconf")
    assert cache_key(omegaconf.OmegaConf.create(cfg)) == key


def test_unreadable_cache_is_regenerated(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = {**CONFIGS["arc"], "train_per_level": 2, "test_per_level": 1}
    path = tmp_path / "arc" / f"{cache_key(cfg)}.parquet"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not parquet")
    caplog.set_level(logging.INFO, logger="sec.tasks")
    df = load_task_data(cfg, tmp_path)
    assert len(df) == 2 * 3 + 4
    assert "unreadable" in caplog.text
    pd.testing.assert_frame_equal(pd.read_parquet(path), df)


def test_concurrent_loads_generate_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = {**CONFIGS["countdown"], "train_per_level": 3, "test_per_level": 2}
    calls: list[int] = []
    real = generation.generate_items

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        time.sleep(0.05)  # widen the race window
        return real(*args, **kwargs)

    monkeypatch.setattr(generation, "generate_items", counting)
    results: list[pd.DataFrame] = []
    threads = [threading.Thread(target=lambda: results.append(load_task_data(cfg, tmp_path))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 3
    assert len(calls) == len(cfg["train_levels"]) + len(cfg["test_levels"])  # one generation in all
    for df in results[1:]:
        pd.testing.assert_frame_equal(df, results[0])


# -------------------------------------------------------------------------------------- bad configs


def _bad(**changes: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(CONFIGS["countdown"])
    for key, value in changes.items():
        if value is None:
            del cfg[key]
        else:
            cfg[key] = value
    return cfg


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        (_bad(generator="chess"), "unknown generator 'chess'"),
        (_bad(train_levels=[1, 5]), "train_levels has level 5, missing from levels"),
        (_bad(test_levels=[1, 2, 3, 4, 5]), "test_levels has level 5, missing from levels"),
        (_bad(train_levels=[]), "train_levels is empty"),
        (_bad(train_per_level=0), "train_per_level must be a positive int"),
        (_bad(test_per_level=-3), "test_per_level must be a positive int"),
        (_bad(train_per_level=2.5), "train_per_level must be a positive int"),
        (_bad(seed=None), r"missing field\(s\) \['seed'\]"),
        (_bad(levels={}), "levels must be a non-empty mapping"),
        (_bad(levels={"one": COUNTDOWN_LEVELS[1]}), "level 'one' is not an int"),
        (_bad(levels={**COUNTDOWN_LEVELS, 2: {"min_numbers": 1}}), "level 2 kwargs .* rejected by reasoning-gym"),
        (_bad(levels={**COUNTDOWN_LEVELS, 2: {"bogus": 1}}), "level 2 kwargs .* rejected by reasoning-gym"),
        (_bad(levels={**COUNTDOWN_LEVELS, 2: {"seed": 1}}), "level 2 must not set 'seed'"),
    ],
)
def test_bad_config(cfg: dict[str, Any], match: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=match) as info:
        load_task_data(cfg, tmp_path)
    assert "\n" not in str(info.value)
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------------- project configs


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("countdown", COUNTDOWN_LEVELS),
        ("zebra", CONFIGS["zebra"]["levels"]),
        ("arc", CONFIGS["arc"]["levels"]),
    ],
)
def test_project_task_configs_match_paper(task: str, expected: dict[int, dict[str, Any]]) -> None:
    omegaconf = pytest.importorskip("omegaconf")
    path = ROOT / "conf" / "task" / f"{task}.yaml"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    cfg = omegaconf.OmegaConf.to_container(omegaconf.OmegaConf.load(path))
    from sec.tasks.data import normalize_task_config

    norm = normalize_task_config(cfg)
    assert norm["levels"] == expected
    assert norm["train_levels"] == [1, 2, 3]
    assert norm["test_levels"] == [1, 2, 3, 4]
