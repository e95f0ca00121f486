"""Compute to a target (analysis/compute.py): the spend at the first evaluation that reaches a
pre-registered target, censoring, the paired ratio to random with its interval, pass@1 at equal
rollouts, and the summary's budget columns and target table, on synthetic run dirs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from analysis.compute import equal_rollouts, ratio_to_baseline, targets_of, to_target
from analysis.load import load_runs
from analysis.summary import overview, run_summary

TARGETS = {"id": 0.5}


def _write_run(root: Path, cur: str, seed: int, ids: dict[int, float], rollouts_per_step: int, targets=TARGETS) -> Path:
    """A run dir: 10 steps, evals {step: id pass@1}, budget fields with ``rollouts_per_step``."""
    run = root / f"{cur}-s{seed}"
    run.mkdir(parents=True)
    cfg = {
        "task": {"name": "arith_bare"},
        "model": {"name": "testbed_lm"},
        "algorithm": {"name": "grpo", "num_generations": 8},
        "curriculum": {"name": cur},
        "backend": {"name": "trl"},
        "train": {"steps": 10, "prompts_per_step": 4},
        "seed": seed,
        "targets": targets,
    }
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    lines = [{"step": s, "kind": "eval", "task": "arith_bare", "split": "id", "pass@1": v} for s, v in ids.items()]
    for step in range(1, 11):
        lines.append({
            "step": step, "kind": "train", "zero_variance_frac": 0.5, "curriculum/sampled_level_mean": 2.0,
            "budget/rollouts": step * rollouts_per_step, "budget/train_s": 2.0 * step,
            "budget/signal_groups": step * 2, "budget/groups_dropped": 1, "budget/cap_hit": 0,
        })  # fmt: skip
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (run / "done.json").write_text("{}")
    return run


@pytest.fixture
def runs(tmp_path):
    # random reaches 0.5 at step 8 on every seed; sec at step 4, 2 or never, spending 1.5x per step
    for seed in range(3):
        _write_run(tmp_path, "random", seed, {0: 0.2, 4: 0.3, 8: 0.55, 10: 0.6}, 32)
    _write_run(tmp_path, "sec", 0, {0: 0.2, 4: 0.5, 8: 0.6, 10: 0.6}, 48)
    _write_run(tmp_path, "sec", 1, {0: 0.2, 2: 0.51, 10: 0.7}, 48)
    _write_run(tmp_path, "sec", 2, {0: 0.2, 4: 0.3, 10: 0.4}, 48)
    return load_runs([tmp_path])


def test_spend_to_target_is_read_at_the_first_evaluation_that_reaches_it(runs):
    assert targets_of(runs) == TARGETS
    per = to_target(runs, TARGETS).set_index(["curriculum", "seed"])
    assert per.loc[("random", 0), ["reached", "step", "rollouts", "seconds"]].tolist() == [True, 8, 256.0, 16.0]
    assert per.loc[("sec", 0), ["step", "rollouts"]].tolist() == [4, 192.0]
    assert per.loc[("sec", 1), ["step", "rollouts"]].tolist() == [2, 96.0]
    censored = per.loc[("sec", 2)]
    assert not censored["reached"] and censored["step"] == 10 and censored["rollouts"] == 480.0


def test_ratio_to_random_is_the_paired_geometric_mean_with_a_t_interval(runs):
    table = ratio_to_baseline(to_target(runs, TARGETS)).set_index("measure")
    r = table.loc["rollouts"]
    logs = np.log([192 / 256, 96 / 256])
    assert r["seeds"] == 2 and r["censored"] == 1 and r["baseline censored"] == 0
    assert r["ratio"] == pytest.approx(math.exp(logs.mean()))
    half = stats.t.ppf(0.975, 1) * logs.std(ddof=1) / math.sqrt(2)
    assert (r["ci low"], r["ci high"]) == pytest.approx((math.exp(logs.mean() - half), math.exp(logs.mean() + half)))
    s = table.loc["seconds"]  # 2 s per step for both: the ratio of steps, 4/8 and 2/8
    assert s["ratio"] == pytest.approx(math.exp(np.log([0.5, 0.25]).mean()))


def test_pass_at_1_at_equal_rollouts_stops_every_run_at_the_smallest_budget(runs):
    eq = equal_rollouts(runs).set_index(["curriculum", "seed"])
    # budgets: random 320, sec 480 per seed -> 320: sec's last evaluation within 320 rollouts
    assert set(eq["budget"]) == {320.0}
    assert eq.loc[("random", 0), ["step", "pass@1"]].tolist() == [10, 0.6]
    assert eq.loc[("sec", 0), ["step", "pass@1"]].tolist() == [4, 0.5]
    assert eq.loc[("sec", 1), ["step", "pass@1"]].tolist() == [2, 0.51]


def test_summary_prints_budget_totals_and_the_target_table(runs):
    per = run_summary(runs).set_index(["curriculum", "seed"])
    assert per.loc[("sec", 0), "rollouts"] == 480 and per.loc[("sec", 0), "train seconds"] == 20.0
    assert per.loc[("sec", 0), "groups dropped"] == 10 and per.loc[("sec", 0), "cap hits"] == 0
    assert per.loc[("sec", 0), "rollouts per signal group"] == pytest.approx(480 / 20)
    text = overview(runs)
    assert "first reached each pre-registered target" in text
    line = next(x for x in text.splitlines() if x.startswith("sec ") and "/3," in x)
    reached = to_target(runs, targets_of(runs)).query("curriculum == 'sec' and reached")
    # two of three seeds reach it, at 192 and 96 rollouts: the mean step and rollouts of those two
    assert f"2/3, {reached['step'].mean():.0f}, 144" in line


def test_runs_that_pre_registered_different_targets_are_refused(tmp_path):
    _write_run(tmp_path, "random", 0, {0: 0.2, 10: 0.6}, 32)
    _write_run(tmp_path, "sec", 0, {0: 0.2, 10: 0.6}, 32, targets={"id": 0.4})
    runs = load_runs([tmp_path])
    with pytest.raises(ValueError, match="different targets"):
        targets_of(runs)
    assert "no compute-to-target table" in overview(runs)


def test_the_league_report_has_the_compute_section(runs, tmp_path):
    from analysis.compute import compute_section

    out = tmp_path / "report"
    out.mkdir()
    md = compute_section(out, runs, targets_of(runs))
    assert "## Compute to target" in md and (out / "compute.md").exists() and (out / "compute.csv").exists()
    row = next(x for x in md.splitlines() if x.startswith("| sec "))
    assert "| 2/3 |" in row and "(n=2)" in row
