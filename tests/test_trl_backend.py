"""The TRL backend in process: the curriculum draws each step after the previous update (no
prefetch lag) and receives exactly the rollouts of the problems it drew, for GRPO and RLOO."""

from __future__ import annotations

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from conftest import CONF
from sec.curriculum import CurriculumPolicy
from sec.workspace import Workspace


@pytest.mark.parametrize("algorithm,curriculum", [("grpo", "sec"), ("rloo", "ordered"), ("grpo", "sec_progress")])
def test_draw_sees_previous_update_and_update_sees_the_drawn_problems(tmp_path, monkeypatch, algorithm, curriculum):
    events: list[tuple[str, object]] = []
    sample, update = CurriculumPolicy.sample, CurriculumPolicy.update

    def spy_sample(self, n):
        idx = sample(self, n)
        events.append(("sample", idx.copy()))
        return idx

    def spy_update(self, rows, values, rewards=None):
        events.append(("update", (np.asarray(rows).copy(), np.asarray(values).copy())))
        if curriculum == "sec_progress":  # reward-based objectives get one task reward per rollout
            assert rewards is not None and len(rewards) == len(rows)
        return update(self, rows, values, rewards)

    monkeypatch.setattr(CurriculumPolicy, "sample", spy_sample)
    monkeypatch.setattr(CurriculumPolicy, "update", spy_update)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                "profile=tiny",
                "task=countdown",
                f"algorithm={algorithm}",
                f"curriculum={curriculum}",
                "train.steps=3",
                "train.save_every=0",
                "eval.every=0",
            ],
        )
    summary = Workspace(cfg, tmp_path / "run").run()
    assert "id pass@1" in summary

    kinds = [k for k, _ in events]
    assert kinds == ["sample", "update"] * 3, kinds
    g = cfg.algorithm.num_generations
    for (_, drawn), (_, (rows, values)) in zip(events[::2], events[1::2], strict=True):
        assert len(drawn) == cfg.train.prompts_per_step
        np.testing.assert_array_equal(rows, np.repeat(drawn, g))  # each group's rollouts, in order
        assert values.shape == rows.shape and np.all(values >= 0)


def last_complete_checkpoint(checkpoint_dir):
    from sec.rundir import newest_complete_checkpoint

    found = newest_complete_checkpoint(checkpoint_dir, "trl")
    return None if found is None else str(found[1])


def test_resume_skips_a_checkpoint_the_job_did_not_finish_saving(tmp_path, caplog):
    from sec.rundir import CURRICULUM_STATE

    assert last_complete_checkpoint(tmp_path / "none") is None
    for step in (10, 20, 30):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-final").mkdir()  # not a step: ignored
    assert last_complete_checkpoint(tmp_path) is None  # nothing finished saving
    for step in (10, 20):
        (tmp_path / f"checkpoint-{step}" / CURRICULUM_STATE).write_text("{}")
    caplog.set_level("WARNING", logger="sec.rundir")
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-20")
    assert "checkpoint-30 is incomplete" in caplog.text
