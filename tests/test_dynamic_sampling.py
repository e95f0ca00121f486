"""Dynamic sampling (DAPO §3.2; issue 26) and budget accounting: the engine-free rule, the merge of
TRL outputs, and real TRL runs (GRPO and RLOO) whose reward leaves some groups all-equal."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from conftest import CONF
from sec.budget import Budget
from sec.curriculum import CurriculumFeed
from sec.dynamic_sampling import DynamicSampling, GroupSelection, signal_groups
from sec.errors import ConfigError
from sec.metrics import is_run_varying, read_metrics
from sec.workspace import Workspace


def _cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=["profile=tiny", *overrides])


# ---------------------------------------------------------------------- the rule


def test_signal_groups_are_those_whose_rewards_differ():
    rewards = [1, 1, 0, 1, 0, 0, 0.5, 0.5]
    assert signal_groups(rewards, 2).tolist() == [False, True, False, False]
    assert signal_groups(rewards, 4).tolist() == [True, True]
    with pytest.raises(ValueError, match="not whole groups of 3"):
        signal_groups(rewards, 3)


def test_selection_keeps_exactly_the_target_and_cuts_the_surplus():
    sel = GroupSelection(target=3, num_generations=2, max_draws=5)
    sel.add([0, 1, 0, 0, 1, 0])  # groups 0 and 2 with signal
    assert (sel.kept, sel.done) == (2, False)
    sel.add([1, 0, 0, 1, 1, 1])  # groups 0 and 1 with signal: one is surplus
    assert (sel.kept, sel.done, sel.cap_hit, sel.draws) == (3, True, False, 2)
    plan = sel.plan()
    assert [(d, g.tolist(), z.tolist()) for d, g, z in plan] == [(0, [0, 2], []), (1, [0], [])]


def test_selection_at_the_cap_fills_the_step_with_zero_weight_groups():
    sel = GroupSelection(target=3, num_generations=2, max_draws=2)
    sel.add([0, 0, 1, 1, 0, 1])  # group 2 only
    sel.add([1, 1, 1, 1, 0, 0])  # none
    assert sel.done and sel.cap_hit and sel.kept == 1
    plan = {d: (g.tolist(), z.tolist()) for d, g, z in sel.plan()}
    # the filler comes from the last draw first; 3 groups in all
    assert plan == {0: ([2], []), 1: ([0, 1], [0, 1])}


def test_settings_from_config_and_their_errors():
    cfg = _cfg("train.dynamic_sampling=true", "train.max_draws_per_step=4")
    ds = DynamicSampling.from_config(cfg.train)
    assert ds == DynamicSampling(max_draws=4, groups_per_draw=int(cfg.train.prompts_per_step))
    assert DynamicSampling.from_config(_cfg().train) is None
    with pytest.raises(ConfigError, match="max_draws_per_step=0"):
        DynamicSampling.from_config(_cfg("train.dynamic_sampling=true", "train.max_draws_per_step=0").train)
    with pytest.raises(ConfigError, match="groups_per_draw=0"):
        DynamicSampling.from_config(_cfg("train.dynamic_sampling=true", "train.groups_per_draw=0").train)
    short = _cfg("train.dynamic_sampling=true", "train.groups_per_draw=1", "train.max_draws_per_step=1")
    with pytest.raises(ConfigError, match=r"1 groups cannot fill a step of train\.prompts_per_step=2"):
        DynamicSampling.from_config(short.train)
    from sec.workspace import check_config

    with pytest.raises(ConfigError, match="cannot fill a step"):  # before anything runs
        check_config(short)


def test_budget_adds_up_and_resumes_from_the_last_train_record():
    b = Budget()
    b.add_draw(groups=4, num_generations=8, completion_tokens=100, signal_groups=3)
    b.add_draw(groups=4, num_generations=8, completion_tokens=50, signal_groups=1)
    b.add_seconds("generation_s", 1.5)
    b.add_seconds("reward_s", 0.25)
    rec = b.end_step(wall_s=3.0, groups_kept=4, curriculum_s=0.25)
    assert rec["budget/rollouts"] == rec["budget/step_rollouts"] == 64
    assert rec["budget/completion_tokens"] == 150 and rec["budget/signal_groups"] == 4
    assert (rec["budget/draws"], rec["budget/groups_kept"], rec["budget/groups_dropped"]) == (2, 4, 4)
    assert rec["update_s"] == pytest.approx(1.0) and rec["budget/cap_hit"] == 0
    b.add_draw(groups=4, num_generations=8, completion_tokens=10, signal_groups=4)
    rec2 = b.end_step(wall_s=1.0, groups_kept=4)
    assert rec2["budget/rollouts"] == 96 and rec2["budget/train_s"] == pytest.approx(4.0)
    again = Budget.resume([{"kind": "train", **rec}, {"kind": "eval", "step": 1}])
    assert (again.rollouts, again.completion_tokens, again.signal_groups) == (64, 150, 4)
    assert Budget.resume([]) == Budget()
    with pytest.raises(ValueError, match="5 groups kept of 4"):
        b.add_draw(groups=4, num_generations=8, completion_tokens=0, signal_groups=0)
        b.end_step(wall_s=0.0, groups_kept=5)
    with pytest.raises(ValueError, match="bad rollout batch counts"):
        b.add_draw(groups=2, num_generations=8, completion_tokens=0, signal_groups=3)
    assert all(is_run_varying(k) for k in ("budget/train_s", "update_s", "reward_s", "generation_s"))
    assert not is_run_varying("budget/rollouts")


def test_merge_pads_prompts_left_and_completions_right_and_zeroes_filler_rows():
    from sec.backends.trl_merge import merge_groups

    def out(prompt_w: int, comp_w: int, base: int):  # 2 groups of 2 rows
        return {
            "prompt_ids": torch.full((4, prompt_w), base),
            "prompt_mask": torch.ones(4, prompt_w, dtype=torch.long),
            "completion_ids": torch.full((4, comp_w), base + 1),
            "completion_mask": torch.ones(4, comp_w, dtype=torch.long),
            "advantages": torch.arange(4, dtype=torch.float) + base,
            "num_items_in_batch": torch.tensor(4 * comp_w),
        }

    merged = merge_groups([out(2, 3, 10), out(3, 1, 20)], [(0, np.array([1]), np.array([])), (1, [0], [0])], 2, 0)
    assert merged["prompt_ids"].tolist() == [[0, 10, 10], [0, 10, 10], [20, 20, 20], [20, 20, 20]]
    assert merged["prompt_mask"].tolist() == [[0, 1, 1]] * 2 + [[1, 1, 1]] * 2
    assert merged["completion_ids"].tolist() == [[11, 11, 11]] * 2 + [[21, 0, 0]] * 2
    # group 1 of draw 0 (rows 2, 3) kept; group 0 of draw 1 is filler: no tokens, no advantage
    assert merged["completion_mask"].tolist() == [[1, 1, 1]] * 2 + [[0, 0, 0]] * 2
    assert merged["advantages"].tolist() == [12.0, 13.0, 0.0, 0.0]
    assert int(merged["num_items_in_batch"]) == 6
    with pytest.raises(NotImplementedError, match="pixel_values"):
        merge_groups([{**out(1, 1, 0), "pixel_values": torch.zeros(4, 1)}], [(0, [0, 1], [])], 2, 0)


# ---------------------------------------------------------------------- real TRL runs


def _run(tmp_path, monkeypatch, score, *overrides: str):
    """A real tiny TRL run (arith_bare: 3 training levels, short prompts) with the training reward
    ``score(completion, record)``; returns its train records, the rows fed to the curriculum per
    update and the advantages of every row the loss saw."""
    from trl import GRPOTrainer, RLOOTrainer

    monkeypatch.setattr(Workspace, "train_score", lambda self, completion, record: score(completion, record))
    fed: list[int] = []
    seen: list[torch.Tensor] = []
    for cls in (GRPOTrainer, RLOOTrainer):
        orig = cls.compute_loss

        def compute_loss(self, model, inputs, *a, _orig=orig, **k):
            seen.append(inputs["advantages"].detach().clone())
            return _orig(self, model, inputs, *a, **k)

        monkeypatch.setattr(cls, "compute_loss", compute_loss)
    cfg = _cfg("task=arith_bare", "curriculum=sec", "train.steps=3", "train.save_every=0", "train.prompts_per_step=3",
               "algorithm.num_generations=4", "train.dynamic_sampling=true", "eval.every=0", *overrides)  # fmt: skip
    feed = CurriculumFeed.feed

    def counting_feed(self, rows, abs_adv, rewards=None):
        fed.append(len(rows))
        return feed(self, rows, abs_adv, rewards)

    monkeypatch.setattr(CurriculumFeed, "feed", counting_feed)
    ws = Workspace(cfg, tmp_path / "run")
    ws.run()
    train = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    return train, fed, seen


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_dynamic_sampling_keeps_exactly_the_signal_groups_and_feeds_the_dropped_ones(tmp_path, monkeypatch, algorithm):
    """Level-1 problems get a reward that varies within a group (the completion's length parity),
    the others 0 for every rollout: every step trains on prompts_per_step groups, all with signal,
    and the curriculum sees every group rolled out."""

    def score(completion, record):
        return float(len(completion) % 2) if int(record["level"]) == 1 else 0.0

    train, fed, seen = _run(tmp_path, monkeypatch, score, f"algorithm={algorithm}", "train.max_draws_per_step=60")
    g = 4
    assert [r["budget/groups_kept"] for r in train] == [3, 3, 3]
    assert all(r["budget/cap_hit"] == 0 for r in train)
    assert sum(r["budget/groups_dropped"] for r in train) > 0  # levels 2-3 were drawn and dropped
    # budget: rollouts = groups rolled out x num_generations, cumulative, every draw fed to the curriculum
    for r in train:
        groups = r["budget/groups_kept"] + r["budget/groups_dropped"]
        assert r["budget/step_rollouts"] == groups * g == r["budget/draws"] * 3 * g
    assert sum(fed) == sum(r["budget/step_rollouts"] for r in train) == train[-1]["budget/rollouts"]
    assert len(fed) == sum(r["budget/draws"] for r in train)
    assert train[-1]["budget/completion_tokens"] > 0
    # the loss saw kept groups only: every row of a group with 0/1 rewards that differ has A != 0
    rows = torch.cat(seen)
    assert rows.numel() == 3 * 3 * g and bool((rows != 0).all())


def test_dynamic_sampling_at_its_cap_is_counted_and_logged(tmp_path, monkeypatch, caplog):
    """A reward that is 0 for every rollout: no group has signal, every step stops at the cap."""
    caplog.set_level(logging.WARNING, logger="sec.backends.trl")
    train, fed, seen = _run(tmp_path, monkeypatch, lambda c, r: 0.0, "train.max_draws_per_step=2")
    assert [(r["budget/draws"], r["budget/cap_hit"], r["budget/groups_kept"]) for r in train] == [(2, 1, 0)] * 3
    assert len(fed) == 6
    assert sum("the cap, train.max_draws_per_step" in m for m in caplog.messages) == 3
    assert bool((torch.cat(seen) == 0).all())


def test_without_dynamic_sampling_the_budget_counts_one_draw_per_step(tmp_path, monkeypatch):
    train, _fed, _ = _run(tmp_path, monkeypatch, lambda c, r: float(len(c) % 2), "train.dynamic_sampling=false")
    assert [r["budget/draws"] for r in train] == [1, 1, 1]
    assert [r["budget/rollouts"] for r in train] == [12, 24, 36]
    assert all(r["budget/groups_kept"] == 3 and r["budget/groups_dropped"] == 0 for r in train)
    for r in train:
        assert r["update_s"] >= 0 and r["generation_s"] > 0 and r["reward_s"] >= 0


# ---------------------------------------------------------------------- verl


def _verl_ws(tmp_path, *overrides: str) -> Workspace:
    from sec.workspace import check_config

    cfg = _cfg("backend=verl", "backend.device=cpu", "train.dynamic_sampling=true", "train.max_draws_per_step=4",
               *overrides)  # fmt: skip
    check_config(cfg)
    return Workspace(cfg, tmp_path / "run")


def test_verl_dry_run_maps_the_option_to_filter_groups_and_verl_validates_it(tmp_path):
    from verl.trainer.config import FilterGroupsConfig
    from verl.utils.config import omega_conf_to_dataclass

    from sec.backends import verl as vb

    ws = _verl_ws(tmp_path, "train.groups_per_draw=3")
    run = vb.build(ws, resolve_model=False)  # composes, then verl's validate_config and dataclasses
    fg = omega_conf_to_dataclass(run.config.algorithm.filter_groups)
    assert isinstance(fg, FilterGroupsConfig)
    assert (fg.enable, fg.metric, fg.max_num_gen_batches) == (True, "acc", 4)
    assert run.config.data.gen_batch_size == 3
    off = vb.build(_verl_ws(tmp_path, "train.dynamic_sampling=false"), resolve_model=False).config
    assert not off.algorithm.filter_groups.enable and off.data.gen_batch_size is None


def test_a_verl_run_refuses_a_filter_its_legacy_trainer_would_ignore(tmp_path):
    """verl 0.9.1 filters groups in its v1 trainer only: the legacy RayPPOTrainer, where SEC's
    sampler runs, never reads algorithm.filter_groups (if a verl release starts to, this test
    fails and the refusal can go)."""
    import inspect

    from verl.trainer.ppo import ray_trainer

    from sec.backends import verl as vb

    assert "filter_groups" not in inspect.getsource(ray_trainer)
    with pytest.raises(ConfigError, match=r"only in its v1 trainer.*use backend=trl"):
        vb.build(_verl_ws(tmp_path), resolve_model=True)


def test_verl_train_records_carry_the_budget(tmp_path, monkeypatch):
    """verl's file log and the curriculum log -> train records with the budget fields: one rollout
    batch per step, tokens from verl's mean response length, cumulative over a resumed merger."""
    import json

    from verl.utils.tracking import Tracking

    from sec.backends import verl as vb
    from sec.metrics import MetricsWriter

    paths = vb.verl_paths(tmp_path)
    paths.root.mkdir(parents=True)
    monkeypatch.setenv("VERL_FILE_LOGGER_PATH", str(paths.verl_log))
    tracking = Tracking(project_name="sec", experiment_name="t", default_backend=["file"])
    cur = []
    for step in (1, 2):
        data = {"training/global_step": step, "response_length/mean": 5.5, "timing_s/step": 4.0, "timing_s/gen": 1.0}
        tracking.log(data=data, step=step)
        cur.append({"step": step, "phase": "draw", "curriculum/sampled_level_mean": 2.0})
        cur.append({"step": step, "phase": "update", "zero_variance_frac": 0.25, "curriculum/overhead_ms": 500.0})
    paths.curriculum_log.write_text("".join(json.dumps(c) + "\n" for c in cur[:2]))
    kw = dict(groups_per_step=4, num_generations=2)
    assert vb.MetricsMerger(MetricsWriter(tmp_path), paths, 2, {}, [1], [2], **kw).poll(max_step=1) == 1
    paths.curriculum_log.write_text("".join(json.dumps(c) + "\n" for c in cur))
    assert vb.MetricsMerger(MetricsWriter(tmp_path), paths, 2, {}, [1], [2], **kw).poll() == 1  # resumed
    train = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "train"]
    assert [r["budget/rollouts"] for r in train] == [8, 16]
    assert [r["budget/completion_tokens"] for r in train] == [44, 88]
    assert [r["budget/signal_groups"] for r in train] == [3, 6]
    assert train[1]["budget/train_s"] == pytest.approx(8.0) and train[1]["update_s"] == pytest.approx(2.5)
    assert (train[1]["budget/draws"], train[1]["budget/groups_kept"], train[1]["budget/groups_dropped"]) == (1, 4, 0)
