"""The run dir's checkpoint contract (sec/rundir.py): which checkpoint a resume takes, the
curriculum state inside it, pruning that never leaves a run without a complete checkpoint."""

from __future__ import annotations

import json

import pytest
from curricula import build

from sec import rundir


def _policy(seed: int = 0):
    return build("sec", [(1,), (2,), (3,)] * 4, seed=seed)


def _ckpt(root, engine, step, complete):
    name = f"checkpoint-{step}" if engine == "trl" else f"global_step_{step}"
    d = root / name
    d.mkdir(parents=True)
    (d / "model.bin").write_text("weights")
    if complete:
        (d / rundir.CURRICULUM_STATE).write_text("{}")
    return d


@pytest.mark.parametrize("engine", ["trl", "verl"])
def test_checkpoints_are_listed_by_step_not_by_name(tmp_path, engine):
    for step in (100, 20, 3):
        _ckpt(tmp_path, engine, step, complete=True)
    (tmp_path / "checkpoint-final").mkdir()  # not a step
    (tmp_path / "global_step_x").mkdir()
    assert [s for s, _ in rundir.checkpoints(tmp_path, engine)] == [3, 20, 100]
    assert rundir.checkpoints(tmp_path / "missing", engine) == []
    with pytest.raises(ValueError, match="unknown engine 'jax'"):
        rundir.checkpoints(tmp_path, "jax")


def test_the_newest_complete_checkpoint_wins_over_a_torn_newer_one(tmp_path, caplog):
    _ckpt(tmp_path, "verl", 10, complete=True)
    _ckpt(tmp_path, "verl", 20, complete=True)
    _ckpt(tmp_path, "verl", 30, complete=False)
    caplog.set_level("WARNING", logger="sec.rundir")
    step, path = rundir.newest_complete_checkpoint(tmp_path, "verl")
    assert (step, path.name) == (20, "global_step_20")
    assert "global_step_30 is incomplete" in caplog.text
    assert rundir.newest_complete_checkpoint(tmp_path, "trl") is None


def test_curriculum_state_round_trips_through_a_checkpoint(tmp_path):
    a = _policy(seed=1)
    a.update([0, 1, 2], [0.9, 0.1, 0.5])
    a.sample(5)
    ckpt = tmp_path / "checkpoint-7"
    assert not rundir.is_complete(ckpt)
    rundir.save_curriculum_state(ckpt, a)
    assert rundir.is_complete(ckpt) and not list(ckpt.glob("*.tmp"))
    b = _policy(seed=2)
    rundir.load_curriculum_state(ckpt, b)
    assert b.state_dict() == json.loads(json.dumps(a.state_dict()))
    assert b.sample(16).tolist() == a.sample(16).tolist()
    with pytest.raises(FileNotFoundError, match=r"has no curriculum\.json"):
        rundir.load_curriculum_state(tmp_path / "checkpoint-8", b)


def test_pruning_keeps_the_newest_complete_checkpoint_until_the_next_is_complete(tmp_path):
    _ckpt(tmp_path, "trl", 10, complete=True)
    _ckpt(tmp_path, "trl", 20, complete=True)
    _ckpt(tmp_path, "trl", 30, complete=False)  # being saved (or torn by a kill)
    gone = rundir.prune_checkpoints(tmp_path, "trl", keep=1)
    assert [p.name for p in gone] == ["checkpoint-10"]
    # step 20 stays: the newer one is not complete yet
    assert [s for s, _ in rundir.checkpoints(tmp_path, "trl")] == [20, 30]
    (tmp_path / "checkpoint-30" / rundir.CURRICULUM_STATE).write_text("{}")
    assert [p.name for p in rundir.prune_checkpoints(tmp_path, "trl", keep=1)] == ["checkpoint-20"]
    assert rundir.prune_checkpoints(tmp_path, "trl", keep=0) == []
    assert [s for s, _ in rundir.checkpoints(tmp_path, "trl")] == [30]


def test_json_is_written_whole_or_not_at_all(tmp_path):
    path = tmp_path / "done.json"
    rundir.write_json_atomic(path, {"id pass@1": 0.5})
    rundir.write_model_source(tmp_path, "/models/x", "cache")
    assert json.loads(path.read_text()) == {"id pass@1": 0.5}
    assert json.loads((tmp_path / rundir.MODEL_SOURCE).read_text()) == {"path": "/models/x", "source": "cache"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done.json", "model_source.json"]
