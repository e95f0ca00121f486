"""verl's logs into metrics.jsonl (sec/backends/verl/metrics.py): verl's own `file` logger
(Tracking) and the dataset's curriculum log become train and eval records with the TRL schema."""

from __future__ import annotations

import json

import pytest
from verl.utils.tracking import Tracking

from sec.backends import verl as vb
from sec.metrics import MetricsWriter, is_run_varying, read_metrics, reproducible


def test_verl_file_log_and_curriculum_log_become_metrics_jsonl(tmp_path, monkeypatch):
    paths = vb.verl_paths(tmp_path)
    paths.root.mkdir(parents=True)
    monkeypatch.setenv("VERL_FILE_LOGGER_PATH", str(paths.verl_log))
    tracking = Tracking(project_name="sec", experiment_name="t", default_backend=["file"])
    val = {"val-core/countdown/level_1/acc/mean@2": 0.5, "val-core/countdown/level_2/acc/mean@2": 0.25}
    val |= {"val-core/countdown/level_4/acc/mean@2": 0.0, "val-aux/countdown/level_1/reward/mean@2": 0.3}
    cur = []
    for step in (1, 2):
        cur.append({"step": step, "phase": "draw", "curriculum/1/prob": 0.5, "curriculum/1/q": 0.1 * step})
        data = {"training/global_step": step, "critic/score/mean": 0.2 * step, "response_length/mean": 30.0}
        data |= {"timing_s/step": 12.5, "actor/pg_loss": -0.1}
        tracking.log(data=data | (val if step == 2 else {}), step=step)
    cur.append({"step": 1, "phase": "update", "curriculum/1/q": 0.3, "zero_variance_frac": 0.5})
    paths.curriculum_log.write_text("".join(json.dumps(c) + "\n" for c in cur))
    writer = MetricsWriter(tmp_path)
    n_problems = {("countdown", "level_1"): 2, ("countdown", "level_2"): 6}
    merger = vb.MetricsMerger(writer, paths, 3, n_problems, [1, 2, 3], [4])
    assert merger.poll() == 1  # step 2 waits for its curriculum feedback
    assert merger.poll(final=True) == 1 + 5  # verl exited: step 2 as drawn, and its evaluation
    assert merger.poll(final=True) == 0
    records = read_metrics(tmp_path / "metrics.jsonl")
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2]
    assert train[0]["reward_mean"] == 0.2 and train[0]["verl/actor/pg_loss"] == -0.1
    assert train[0]["curriculum/1/q"] == 0.3 and train[0]["zero_variance_frac"] == 0.5
    assert train[0]["curriculum/fed_back"] and not train[1]["curriculum/fed_back"]
    assert train[1]["curriculum/1/q"] == pytest.approx(0.2) and train[1]["wall_time_s"] == 12.5
    evals = {r["split"]: r for r in records if r["kind"] == "eval"}
    assert set(evals) == {"level_1", "level_2", "level_4", "id", "ood"}
    assert evals["id"]["pass@1"] == pytest.approx((0.5 * 2 + 0.25 * 6) / 8) and evals["id"]["n_problems"] == 8
    assert evals["ood"]["pass@1"] == 0.0 and evals["level_1"]["k_samples"] == 2


def test_named_eval_sets_pool_into_id_and_ood(tmp_path):
    """Math validates on named sets (data_source `math/math500`, ...), pooled by task.id_sets / ood_sets."""
    paths = vb.verl_paths(tmp_path)
    paths.root.mkdir(parents=True)
    val = {"val-core/math/math500/acc/mean@8": 0.6, "val-core/math/amc/acc/mean@8": 0.3}
    val["val-core/math/aime24/acc/mean@8"] = 0.1
    paths.verl_log.write_text(json.dumps({"step": 0, "data": val}) + "\n")
    n = {("math", "math500"): 500, ("math", "amc"): 83, ("math", "aime24"): 30}
    merger = vb.MetricsMerger(
        MetricsWriter(tmp_path), paths, 240, n, [1, 2, 3, 4, 5], [], ["math500"], ["amc", "aime24"]
    )
    assert merger.poll() == 5
    evals = {r["split"]: r for r in read_metrics(tmp_path / "metrics.jsonl")}
    assert list(evals) == ["aime24", "amc", "math500", "id", "ood"]
    assert evals["id"]["pass@1"] == 0.6 and evals["id"]["n_problems"] == 500
    assert evals["ood"]["pass@1"] == pytest.approx((0.3 * 83 + 0.1 * 30) / 113) and evals["ood"]["k_samples"] == 8


def test_run_varying_fields_are_clocks_and_memory_only():
    """What two runs of one config may differ in: names and ``/`` prefixes, nothing else."""
    rec = {
        "step": 3,
        "kind": "train",
        "loss": 0.5,
        "generation_s": 1.2,
        "wall_time_s": 2.0,
        "curriculum/overhead_ms": 0.3,
        "curriculum/1/q": 0.1,
        "verl/timing_s/gen": 1.1,
        "verl/actor/perf/max_memory_allocated_gb": 2.0,
        "verl/actor/pg_loss": 0.4,
        "reward/timeouts": 0,
    }
    assert reproducible(rec) == {
        "step": 3,
        "kind": "train",
        "loss": 0.5,
        "curriculum/1/q": 0.1,
        "verl/actor/pg_loss": 0.4,
        "reward/timeouts": 0,
    }
    # a prefix matches whole path segments only
    assert not is_run_varying("verl/timing_s_total") and is_run_varying("verl/timing_s/x/y")
