"""Data sets ahead of training: resumable shards, the manifest, staleness, `python -m sec.data`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import reasoning_gym
from hydra import compose, initialize_config_dir

from conftest import CONF, ROOT
from sec.tasks import cache as task_cache
from sec.tasks import data as task_data
from sec.tasks import generation
from sec.tasks.data import cache_key, check_task_data, load_task_data, manifest_path
from sec.workspace import task_components


def tiny_task(name: str = "countdown") -> dict:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"task={name}", "profile=tiny"])
    return task_components(cfg.task)[0]


def test_interrupted_generation_resumes_from_its_shards(tmp_path, monkeypatch, caplog):
    task = tiny_task()
    real = generation.generate_items
    calls = []

    def dies_on_third_shard(*args, **kwargs):
        calls.append(args[5])  # split
        if len(calls) == 3:
            raise KeyboardInterrupt  # the job is killed mid-generation
        return real(*args, **kwargs)

    monkeypatch.setattr(generation, "generate_items", dies_on_third_shard)
    with pytest.raises(KeyboardInterrupt):
        load_task_data(task, tmp_path / "a")
    shards = tmp_path / "a" / "countdown" / f"{cache_key(task)}.shards"
    assert sorted(p.name for p in shards.iterdir()) == [
        "test-L1.parquet", "test-L1.stats.json", "test-L2.parquet", "test-L2.stats.json"
    ]  # fmt: skip

    monkeypatch.setattr(generation, "generate_items", real)
    caplog.set_level("INFO", logger="sec.tasks")
    resumed = load_task_data(task, tmp_path / "a")
    assert caplog.text.count("(resumed)") == 2 and not shards.exists()
    fresh = load_task_data(task, tmp_path / "b")
    assert resumed.equals(fresh)  # the same set as an uninterrupted generation

    manifest = json.loads(manifest_path(shards.with_suffix(".parquet")).read_text())
    assert manifest["rows"] == len(fresh) and manifest["reasoning_gym"] == reasoning_gym.__version__
    entries = {(e["split"], e["level"]): e for e in manifest["shards"]}
    assert entries[("test", 1)]["resumed"] and not entries[("train", 3)]["resumed"]
    # a shard read back keeps the stats of the attempt that generated it
    assert entries[("test", 1)]["seconds"] > 0 and entries[("test", 1)]["workers"] >= 1
    assert entries[("train", 2)]["rows"] == task["train_per_level"]
    assert entries[("train", 2)]["seed"] == generation.derive_seed(task["seed"], "countdown", 2, "train")
    assert all(len(e["sha256"]) == 64 for e in entries.values()) and manifest["skipped_items"] == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_a_level_killed_midway_resumes_within_the_level(tmp_path, monkeypatch, workers):
    task = dict(tiny_task(), train_per_level=40, test_per_level=2, gen_workers=workers)
    real = generation.generate_items
    saved = []

    def killed_after_two_saves(*args, **kwargs):
        if args[5] != "train" or args[1] != 2:
            return real(*args, **kwargs)
        save = kwargs["on_progress"]

        def save_then_die(state):
            save(state)
            saved.append(len(state["records"]))
            if len(saved) == 2:
                raise KeyboardInterrupt  # killed in the middle of train L2

        kwargs.update(on_progress=save_then_die, progress_every=10)
        return real(*args, **kwargs)

    monkeypatch.setattr(generation, "generate_items", killed_after_two_saves)
    with pytest.raises(KeyboardInterrupt):
        load_task_data(task, tmp_path / "a")
    shards = tmp_path / "a" / "countdown" / f"{cache_key(task)}.shards"
    assert saved == [10, 20] and (shards / "train-L2.partial.parquet").exists()
    assert json.loads((shards / "train-L2.partial.json").read_text())["rows"] == 20

    monkeypatch.setattr(generation, "generate_items", real)
    resumed = load_task_data(task, tmp_path / "a")
    assert not shards.exists()
    assert resumed.equals(load_task_data(task, tmp_path / "b"))  # as if never interrupted
    manifest = json.loads(manifest_path(shards.with_suffix(".parquet")).read_text())
    assert {(e["split"], e["level"]): e["resumed"] for e in manifest["shards"]}[("train", 2)]


def test_partial_shard_ahead_of_its_state_is_cut_back(tmp_path):
    rows = generation.generate_items("countdown", 1, {"min_numbers": 3, "max_numbers": 3}, 6, 1, "train")
    partial = task_cache.Partial(tmp_path / "train-L1.partial")
    partial.save({"records": rows[:4], "next_index": 4, "skipped": [], "dropped": 0, "seconds": 1.0})
    state = partial.state.read_text()
    partial.save({"records": rows, "next_index": 6, "skipped": [], "dropped": 0, "seconds": 2.0})
    partial.state.write_text(state)  # killed between writing the records and the state
    loaded = partial.load()
    assert loaded is not None and loaded["next_index"] == 4 and len(loaded["records"]) == 4
    assert loaded["records"] == rows[:4]


def test_check_reports_ok_missing_corrupt_and_a_changed_generator_version(tmp_path, monkeypatch):
    task = tiny_task()
    assert check_task_data(task, tmp_path) == "missing"
    load_task_data(task, tmp_path)
    assert check_task_data(task, tmp_path) == "ok"

    monkeypatch.setattr(reasoning_gym, "__version__", "99.0.0")
    state = check_task_data(task, tmp_path)
    assert state.startswith("stale:") and "99.0.0" in state
    monkeypatch.undo()

    path = tmp_path / "countdown" / f"{cache_key(task)}.parquet"
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    assert check_task_data(task, tmp_path).startswith("corrupt:")
    assert task_data.DATA_FORMAT_VERSION >= 2


def test_cli_generates_the_mix_then_checks_it(tmp_path):
    env = dict(os.environ, SEC_CACHE_DIR=str(tmp_path))
    cmd = [sys.executable, "-m", "sec.data", "--tasks", "puzzles", "--profile", "tiny", "--workers", "2"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["task", "key"] and [ln.split()[0] for ln in lines[1:]] == [
        "countdown",
        "zebra",
        "arc",
    ]
    check = subprocess.run([*cmd, "--check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0 and check.stdout.count(" ok") == 3
    missing = subprocess.run(
        [*cmd[:-4], "arc", "--profile", "cpu", "--check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert missing.returncode == 1 and "missing" in missing.stdout
