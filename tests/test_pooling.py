"""ID / OOD pass@1 pooling (sec.evaluate.pool_pass_at_1), the one function both backends report
evaluations through: TRL's evaluate() from per-problem values, verl's MetricsMerger from verl's
per-group means."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sec.backends import verl as vb
from sec.evaluate import pool_pass_at_1
from sec.metrics import MetricsWriter, read_metrics


def test_groups_then_id_and_ood_weighted_by_problems():
    groups = {"level_10": (1.0, 4), "level_2": (0.5, 6), "level_1": (1.5, 2), "amc": (0.0, 3)}
    out = pool_pass_at_1(groups, id_groups=["level_1", "level_2", "level_3"], ood_groups=["level_10", "aime24"])
    assert [r["split"] for r in out] == ["level_1", "level_2", "level_10", "amc", "id", "ood"]
    by = {r["split"]: r for r in out}
    assert by["level_1"]["pass@1"] == 0.75 and by["level_2"]["n_problems"] == 6
    assert by["id"]["pass@1"] == pytest.approx((1.5 + 0.5) / 8) and by["id"]["n_problems"] == 8
    assert by["ood"]["pass@1"] == 0.25 and by["ood"]["n_problems"] == 4  # aime24 is absent: ignored
    assert [r["split"] for r in pool_pass_at_1(groups, [], ["nothing"])] == ["level_1", "level_2", "level_10", "amc"]


def test_pooling_group_totals_equals_the_mean_over_all_problems():
    """Equal weight per problem: the pooled value is the mean over the pooled problems, exactly
    for k = 8 samples (per-problem values are multiples of 1/8)."""
    rng = np.random.default_rng(0)
    per = {f"level_{lv}": rng.integers(0, 9, size=n) / 8 for lv, n in zip(range(1, 6), (7, 30, 1, 12, 50), strict=True)}
    totals = {g: (float(v.sum()), len(v)) for g, v in per.items()}
    by = {r["split"]: r for r in pool_pass_at_1(totals, ["level_1", "level_2", "level_3"], ["level_4", "level_5"])}
    assert by["id"]["pass@1"] == float(np.concatenate([per["level_1"], per["level_2"], per["level_3"]]).mean())
    assert by["ood"]["pass@1"] == float(np.concatenate([per["level_4"], per["level_5"]]).mean())
    for g, v in per.items():
        assert by[g]["pass@1"] == float(v.mean()) and by[g]["n_problems"] == len(v)


def test_verl_merger_reports_what_the_trl_evaluation_reports(tmp_path):
    """The same per-problem results, seen as TRL sees them (per problem) and as verl logs them
    (a mean per group), give the same eval records."""
    rng = np.random.default_rng(1)
    per = {f"level_{lv}": rng.integers(0, 5, size=n) / 4 for lv, n in zip(range(1, 5), (3, 5, 2, 6), strict=True)}
    trl = pool_pass_at_1(
        {g: (float(v.sum()), len(v)) for g, v in per.items()}, ["level_1", "level_2", "level_3"], ["level_4"]
    )
    paths = vb.verl_paths(tmp_path)
    paths.root.mkdir(parents=True)
    data = {f"val-core/countdown/{g}/acc/mean@4": float(v.mean()) for g, v in per.items()}
    paths.verl_log.write_text(json.dumps({"step": 10, "data": data}) + "\n")
    n_problems = {("countdown", g): len(v) for g, v in per.items()}
    merger = vb.MetricsMerger(MetricsWriter(tmp_path), paths, 20, n_problems, [1, 2, 3], [4])
    assert merger.poll() == len(trl)
    verl = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["split"] for r in verl] == [r["split"] for r in trl]
    for a, b in zip(verl, trl, strict=True):
        assert a["pass@1"] == pytest.approx(b["pass@1"], abs=1e-12) and a["n_problems"] == b["n_problems"]
        assert (a["step"], a["kind"], a["task"], a["k_samples"]) == (10, "eval", "countdown", 4)


def test_trl_evaluation_pools_its_per_problem_results(tmp_path):
    """TRL's evaluate() on the tiny model: each record is the mean of its split's per-problem
    pass@1 (as before the pooling moved into one function), ID / OOD over the pooled levels."""
    from hydra import compose, initialize_config_dir

    from conftest import CONF
    from sec.evaluate import evaluate
    from sec.workspace import Workspace

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["profile=tiny", "task=countdown", "eval.k=3"])
    ws = Workspace(cfg, tmp_path / "run")
    ws.run_dir.mkdir(parents=True)
    ws.setup()
    model, tokenizer = ws.load_model()
    per: dict[str, list[float]] = {}
    records = evaluate(
        model,
        tokenizer,
        ws.test_records,
        score=lambda c, r: float(len(c) % 2),  # varied 0 / 1 scores from the sampled text
        train_levels=[1, 2, 3],
        ood_levels=[4],
        prompt_format="chat",
        k=3,
        temperature=1.0,
        max_new_tokens=4,
        batch_size=16,
        max_problems_per_level=2,
        seed=0,
        step=5,
        per_problem=per,
    )
    assert [r["split"] for r in records] == ["level_1", "level_2", "level_3", "level_4", "id", "ood"]
    for r in records:
        assert r["pass@1"] == pytest.approx(float(np.mean(per[r["split"]])), abs=1e-12)
        assert r["n_problems"] == len(per[r["split"]]) and (r["step"], r["k_samples"]) == (5, 3)
    assert per["id"] == per["level_1"] + per["level_2"] + per["level_3"] and per["ood"] == per["level_4"]
