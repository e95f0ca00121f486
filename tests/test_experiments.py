"""The sweep definitions of conf/experiment/ (the paper's sweeps at paper scale, every experiment on the tiny
profile) and the paired-by-seed comparison against random (analysis.summary.paired_vs_baseline)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_dir

from analysis.summary import paired_vs_baseline
from conftest import CONF
from sec.workspace import check_config


def _jobs(experiment: str, *overrides: str) -> list[list[str]]:
    """The job overrides Hydra's basic sweeper makes of ``experiment=<name> <overrides>``: the
    experiment's (and profile's) `hydra.sweeper.params`, the command line winning per key.
    Call inside ``initialize_config_dir``."""
    cfg = compose(config_name="config", overrides=[f"experiment={experiment}", *overrides], return_hydra_config=True)
    params = {k: str(v).split(",") for k, v in cfg.hydra.sweeper.params.items()}
    for o in overrides:
        k, v = o.split("=", 1)
        params[k] = v.split(",")
    keys = list(params)
    return [[f"{k}={v}" for k, v in zip(keys, combo, strict=True)] for combo in itertools.product(*params.values())]


def _compose(experiment: str, job: list[str]):
    return compose(config_name="config", overrides=[f"experiment={experiment}", *job])


@pytest.mark.parametrize(
    "experiment,extra,n_jobs,tag",
    [
        ("table1", ["profile=paper"], 4 * 3 * 2 * 3, "table1"),
        ("figure3", ["profile=paper"], 4 * 2 * 3, "table1"),
        ("figure4", ["profile=paper"], 2 * 3, "figure4"),
        ("figure1", ["profile=paper"], 2 * 3, "figure1"),
        ("table2", ["profile=paper", "algorithm=rloo"], 2 * 3, "table2"),
    ],
)
def test_experiments_define_the_paper_sweeps(experiment, extra, n_jobs, tag):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        _check_paper_sweep(experiment, extra, n_jobs, tag)


def _check_paper_sweep(experiment, extra, n_jobs, tag):
    jobs = _jobs(experiment, *extra)
    assert len(jobs) == n_jobs
    for job in (j for j in jobs if "seed=0" in j):  # seeds do not change the composition
        cfg = _compose(experiment, job)
        check_config(cfg)
        assert cfg.tag == tag and cfg.model.name.startswith("qwen2.5_")
        assert cfg.train.prompts_per_step == 256 and cfg.eval.k == 8
        pair_steps = 240 if cfg.model.name == "qwen2.5_3b" or cfg.task.name == "math" else 120  # SEC.md §3
        steps = {"table2": 120, "figure4": 720}.get(experiment, pair_steps)
        assert cfg.train.steps == steps
    if experiment == "table2":
        assert _compose("table2", ["curriculum=sec", "algorithm=rloo"]).curriculum.tau == 0.25
        assert (
            yaml.safe_load((CONF / "experiment" / "table2.yaml").read_text().split("hydra:")[0])["table2_sec_tau"][
                "ppo"
            ]
            == 1.0
        )
        if (CONF / "algorithm" / "ppo.yaml").exists():
            assert len(_jobs("table2", "profile=paper")) == 12
            assert _compose("table2", ["curriculum=sec", "algorithm=ppo"]).curriculum.tau == 1.0


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_tiny_profile_turns_every_experiment_into_a_cpu_smoke_sweep(experiment):
    extra = ["profile=tiny", "seed=0"] + (["algorithm=rloo"] if experiment == "table2" else [])
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        jobs = _jobs(experiment, *extra)
        assert all("model=tiny" in job for job in jobs)
        cfg = _compose(experiment, jobs[-1])  # the paper-scale check above composes every job
        check_config(cfg)
        assert cfg.model.name == "tiny" and cfg.train.steps == 2 and cfg.train.prompts_per_step == 2


# --------------------------------------------------------------------------- paired against random


def test_paired_vs_random_pairs_by_seed_with_a_student_t_interval():
    # sec - random per seed: ID 0.1, 0.2, 0.3 (seed 3 has no random run: not paired);
    # mean 0.2, std 0.1, t_{0.975, 2} = 4.3027 (a t table), so the interval is 0.2 ± 0.2484.
    rows = [("random", s, r, 0.1, 0.8) for s, r in [(0, 0.2), (1, 0.3), (2, 0.4)]]
    rows += [("sec", s, r, 0.1, 0.7) for s, r in [(0, 0.3), (1, 0.5), (2, 0.7), (3, 0.9)]]
    rows += [("ordered", 0, 0.5, 0.2, 0.6)]
    per_run = pd.DataFrame(rows, columns=["curriculum", "seed", "id pass@1 final", "ood pass@1 final", "wasted"])
    per_run.insert(0, "task", "arith")
    p = paired_vs_baseline(per_run).set_index(["curriculum", "metric"])
    sec_id = p.loc[("sec", "id pass@1 final")]
    assert sec_id["seeds"] == 3 and sec_id["diff mean"] == pytest.approx(0.2)
    assert sec_id["diff std"] == pytest.approx(0.1)
    assert (sec_id["ci low"], sec_id["ci high"]) == pytest.approx((0.2 - 0.24841, 0.2 + 0.24841), abs=1e-5)
    assert 0.05 < sec_id["p"] < 0.1  # t = 0.2 / (0.1 / sqrt 3) = 3.46 on 2 dof: p = 0.074
    # equal differences on every seed: no spread, so no p; the interval collapses onto the mean
    sec_ood = p.loc[("sec", "ood pass@1 final")]
    assert sec_ood["diff mean"] == pytest.approx(0.0) and np.isnan(sec_ood["p"])
    assert (sec_ood["ci low"], sec_ood["ci high"]) == pytest.approx((0.0, 0.0), abs=1e-12)
    assert p.loc[("sec", "wasted"), "diff mean"] == pytest.approx(-0.1)
    # one shared seed: a difference, no interval
    one = p.loc[("ordered", "id pass@1 final")]
    assert one["seeds"] == 1 and one["diff mean"] == pytest.approx(0.3) and np.isnan(one["ci low"])
    # no baseline runs: nothing to compare
    assert paired_vs_baseline(per_run[per_run["curriculum"] != "random"]).empty
