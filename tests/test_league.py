"""The league (issue 17, docs/league.md): the table on synthetic run dirs against hand-computed values
(paired intervals, rollouts per useful group, overhead, budgets), the report's section and Figure 3 per
curriculum, the composition of experiment=league (every job, same budget, every curriculum built, on
TRL and validated by verl's own config) and two real jobs of it end to end on the tiny profile."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_dir

from analysis.league import league_figure, league_markdown, league_table, run_costs
from analysis.load import load_runs
from analysis.report import main as report_main
from conftest import CONF, ROOT
from sec.curriculum import build_curriculum
from sec.workspace import check_config

LEAGUE = ["random", "ordered", "sec", "sec_greso", "dump", "mopps", "e2h", "e2h_cosine", "adarft", "learnability"]
#: t_{0.975, 2} from a t table: the 95% interval of 3 paired seeds is mean ± 4.302653 std / sqrt(3)
T_975_2 = 4.302653

# --------------------------------------------------------------------------------------- synthetic runs


def _write_run(root: Path, cur: str, seed: int, *, evals: dict, zero_var: list, overhead: list | None) -> Path:
    """A run dir as sec.launch writes it: config.yaml, metrics.jsonl (train steps 1.. and the given
    evals {step: (id, ood)}), done.json. 4 problems x 8 rollouts per step."""
    run = root / f"{cur}-s{seed}"
    run.mkdir(parents=True)
    cfg = {
        "task": {"name": "arith_bare", "train_levels": [1, 2, 3]},
        "model": {"name": "testbed_lm"},
        "algorithm": {"name": "grpo", "num_generations": 8},
        "curriculum": {"name": cur},
        "backend": {"name": "trl"},
        "train": {"steps": len(zero_var), "prompts_per_step": 4},
        "seed": seed,
        "tag": "league",
    }
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    lines = []
    for step, (id_, ood) in sorted(evals.items()):
        for split, v in (("id", id_), ("ood", ood)):
            lines.append({"step": step, "kind": "eval", "task": "arith_bare", "split": split, "pass@1": v})
    for i, z in enumerate(zero_var):
        rec = {"step": i + 1, "kind": "train", "zero_variance_frac": z, "curriculum/sampled_level_mean": 1.0 + i / 2}
        if overhead is not None:
            rec["curriculum/overhead_ms"] = overhead[i]
        lines.append(rec)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (run / "done.json").write_text("{}")
    return run


@pytest.fixture
def league_dirs(tmp_path) -> Path:
    """random / sec / dump x seeds 0-2 with chosen pass@1, zero-variance shares and overheads."""
    root = tmp_path / "sweep"
    z_random, z_sec = [0.5, 0.5, 0.25, 0.75], [0.0, 0.25, 0.25, 0.5]
    for s, (id_, ood) in enumerate([(0.4, 0.1), (0.5, 0.1), (0.6, 0.1)]):
        _write_run(root, "random", s, evals={0: (0.3, 0.1), 4: (id_, ood)}, zero_var=z_random, overhead=[0.1] * 4)
    # sec - random, last evaluation: ID +0.1 / +0.2 / +0.3, OOD +0.1 / 0.0 / +0.2
    for s, (id_, ood) in enumerate([(0.5, 0.2), (0.7, 0.1), (0.9, 0.3)]):
        evals = {0: (0.3, 0.1), 4: (id_, ood)}
        if s == 0:
            evals[2] = (0.8, 0.05)  # seed 0's best checkpoint is step 2: ID 0.8, OOD 0.05
        _write_run(root, "sec", s, evals=evals, zero_var=z_sec, overhead=[0.2, 0.4, 0.2, 0.4])
    # dump: random's pass@1 on every seed (no spread); seed 2 stopped after 3 steps (a smaller budget);
    # seed 1 has every group wasted (no useful group)
    for s, id_ in enumerate([0.4, 0.5, 0.6]):
        z = [1.0] * 4 if s == 1 else [0.5, 0.5, 0.5] if s == 2 else z_random
        _write_run(root, "dump", s, evals={0: (0.3, 0.1), 4: (id_, 0.1)}, zero_var=z, overhead=None)
    return root


def test_league_table_against_hand_computed_values(league_dirs):
    runs = load_runs([league_dirs])
    costs = run_costs(runs).assign(run=lambda d: d["run"].map(lambda r: Path(r).name)).set_index("run")
    # 4 steps x 4 problems x 8 rollouts = 128 rollouts; random's useful groups 4 (0.5 + 0.5 + 0.75 + 0.25) = 8
    assert costs.loc["random-s0", "rollouts"] == 128 and costs.loc["dump-s2", "rollouts"] == 96
    assert costs.loc["random-s0", "rollouts per useful group"] == pytest.approx(128 / 8)
    assert costs.loc["sec-s0", "rollouts per useful group"] == pytest.approx(128 / 12)
    assert costs.loc["dump-s1", "rollouts per useful group"] == np.inf
    assert costs.loc["sec-s1", "overhead ms per step"] == pytest.approx(0.3)
    assert np.isnan(costs.loc["dump-s0", "overhead ms per step"])  # a run without the metric

    t = league_table(runs).set_index("curriculum")
    assert list(t.index) == ["random", "sec", "dump"]  # display order
    half = T_975_2 * 0.1 / np.sqrt(3)  # std of the per-seed differences 0.1
    sec = t.loc["sec"]
    assert sec["seeds"] == 3 and sec["id pass@1 final mean"] == pytest.approx(0.7)
    assert sec["id pass@1 final diff"] == pytest.approx(0.2)
    assert (sec["id pass@1 final ci low"], sec["id pass@1 final ci high"]) == pytest.approx((0.2 - half, 0.2 + half))
    assert sec["ood pass@1 final diff"] == pytest.approx(0.1)
    assert (sec["ood pass@1 final ci low"], sec["ood pass@1 final ci high"]) == pytest.approx((0.1 - half, 0.1 + half))
    # best checkpoint: seed 0 at step 2 (ID 0.8 - 0.4, OOD 0.05 - 0.1), seeds 1-2 at the end
    assert sec["id pass@1 best diff"] == pytest.approx((0.4 + 0.2 + 0.3) / 3)
    assert sec["ood pass@1 best diff"] == pytest.approx((-0.05 + 0.0 + 0.2) / 3)
    assert sec["id pass@1 best pairs"] == 3
    assert sec["zero-variance share mean"] == pytest.approx(0.25) and sec["zero-variance share std"] == 0
    assert sec["rollouts per useful group mean"] == pytest.approx(128 / 12)
    assert sec["overhead ms per step mean"] == pytest.approx(0.3)
    assert t.loc["random", "overhead ms per step mean"] == pytest.approx(0.1) and sec["budgets"] == "128"
    # random against itself: no difference; dump equal to random on every seed: a point interval
    assert np.isnan(t.loc["random", "id pass@1 final diff"]) and t.loc["random", "id pass@1 final pairs"] == 0
    dump = t.loc["dump"]
    assert dump["id pass@1 final diff"] == pytest.approx(0.0)
    assert (dump["id pass@1 final ci low"], dump["id pass@1 final ci high"]) == pytest.approx((0.0, 0.0), abs=1e-12)
    assert dump["rollouts per useful group mean"] == np.inf and dump["budgets"] == "96 / 128"
    assert np.isnan(dump["overhead ms per step mean"])

    md = league_markdown(league_table(runs))
    assert f"| SEC | 3 | 0.700 | +0.200 [{0.2 - half:+.3f}, {0.2 + half:+.3f}] |" in md
    assert "| random | 3 | 0.500 | - | 0.100 | - | 0.500 ± 0.000 | 16.0 ± 0.0 | 0.10 ± 0.00 | 128 |" in md
    assert "rollout budgets differ" in md and "| DUMP |" in md and "inf" in md


def test_report_has_the_league_section_and_figure3_per_curriculum(league_dirs, tmp_path):
    out = tmp_path / "report"
    assert report_main([str(league_dirs), "--out", str(out), "--eval-window", "1"]) == 0
    index = (out / "index.md").read_text()
    assert index.index("## League table") < index.index("## Per curriculum and per run")
    assert "![league_figure3](league_figure3.png)" in index and (out / "league_figure3.pdf").exists()
    table = pd.read_csv(out / "league.csv")
    assert list(table["curriculum"]) == ["random", "sec", "dump"] and "ood pass@1 final ci high" in table
    fig = league_figure(load_runs([league_dirs]).train, window=1)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["random (n=3)", "SEC (n=3)", "DUMP (n=3)"]
    # each panel: its curriculum's mean level (1.0, 1.5, 2.0, 2.5 on every seed); random's reference line elsewhere
    line = next(ln for ln in panels[1].get_lines() if ln.get_label().startswith("SEC"))
    np.testing.assert_allclose(line.get_ydata(), [1.0, 1.5, 2.0, 2.5])
    assert any(ln.get_label() == "random" for ln in panels[2].get_lines())
    # runs of another tag get the section on request only
    other = tmp_path / "other"
    for cfg in league_dirs.rglob("config.yaml"):
        cfg.write_text(cfg.read_text().replace("tag: league", "tag: testbed"))
    assert report_main([str(league_dirs), "--out", str(other)]) == 0
    assert "## League table" not in (other / "index.md").read_text()
    assert report_main([str(league_dirs), "--out", str(other), "--league"]) == 0
    assert "## League table" in (other / "index.md").read_text()


# --------------------------------------------------------------------------------------- composition


#: settings every league run shares with the testbed's pre-registered profile (conf/profile/testbed.yaml)
SHARED_WITH_TESTBED = (
    "train.prompts_per_step", "train.learning_rate", "train.temperature", "train.max_completion_length",
    "eval.k", "eval.max_problems_per_level", "eval.temperature", "algorithm.num_generations",
    "model.pretrain.steps", "task.test_per_level", "task.train_per_level",
)  # fmt: skip


def _jobs(*overrides: str) -> list[list[str]]:
    """The jobs Hydra's basic sweeper makes of the experiment's and profile's sweep params."""
    cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    params = {k: str(v).split(",") for k, v in cfg.hydra.sweeper.params.items()}
    return [[f"{k}={v}" for k, v in zip(params, combo, strict=True)] for combo in itertools.product(*params.values())]


@pytest.mark.parametrize("profile", ["league", "league_full"])
def test_every_league_job_composes_with_the_same_rollout_budget(profile):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        base = ["experiment=league", f"profile={profile}"]
        jobs = _jobs(*base)
        testbed = compose(config_name="config", overrides=["experiment=testbed", "profile=testbed"])
        pairs = sorted((int(d["seed"]), d["curriculum"]) for d in (dict(o.split("=") for o in j) for j in jobs))
        assert pairs == sorted(itertools.product(range(5), LEAGUE))
        budgets, arms = set(), [(lv,) for lv in (1, 2, 3) for _ in range(10)]
        for job in jobs:
            cfg = compose(config_name="config", overrides=[*base, *job])
            check_config(cfg)
            assert cfg.tag == "league" and cfg.task.name == "arith_bare" and cfg.model.name == "testbed_lm"
            budgets.add((cfg.train.steps, cfg.train.prompts_per_step, cfg.algorithm.num_generations))
            # the testbed's pre-registered settings; league_full is the testbed's size
            for key in SHARED_WITH_TESTBED:
                assert _get(cfg, key) == _get(testbed, key), key
            if profile == "league_full":
                assert cfg.train.steps == testbed.train.steps and cfg.eval.every == testbed.eval.every
            policy = build_curriculum(cfg.curriculum, arms, total_steps=cfg.train.steps, seed=cfg.seed)
            assert policy.sample(cfg.train.prompts_per_step).size == cfg.train.prompts_per_step
        assert len(budgets) == 1  # every run: the same steps x problems x rollouts
        sec = compose(config_name="config", overrides=[*base, "curriculum=sec_greso"])
        assert (sec.curriculum.inner.alpha, sec.curriculum.inner.tau) == (sec.sec_hparams.alpha, sec.sec_hparams.tau)


def _get(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


def test_greso_spends_the_same_rollouts_as_random():
    """SEC + GRESO skips problems before their rollouts and redraws them: every step still has
    prompts_per_step groups, even when most problems have a zero-variance history."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=league", "profile=league", "curriculum=sec_greso"])
    arms = [(lv,) for lv in (1, 2, 3) for _ in range(20)]
    policy = build_curriculum(cfg.curriculum, arms, total_steps=50, seed=0)
    n, g, skipped = cfg.train.prompts_per_step, cfg.algorithm.num_generations, 0
    for _ in range(30):
        idx = policy.sample(n)
        assert idx.size == n
        rows = np.repeat(idx, g)
        level = np.array([arms[i][0] for i in rows])
        # level 1 all correct, level 3 all wrong (zero variance), level 2 half and half
        rewards = np.where(level == 1, 1.0, np.where(level == 3, 0.0, np.arange(rows.size) % 2))
        policy.update(rows, np.where(level == 2, 1.0, 0.0), rewards)
        skipped += policy.stats()["curriculum/greso_skipped"]
    assert skipped > 0  # it did skip (levels 1 and 3 are all-correct / all-wrong here)


@pytest.mark.parametrize("curriculum", LEAGUE)
def test_every_league_job_composes_on_verl_and_validates(tmp_path, curriculum):
    from sec.backends import verl as vb
    from sec.workspace import Workspace

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["backend=verl", "experiment=league", "profile=league", f"curriculum={curriculum}"],
        )
    check_config(cfg)
    c = vb.build(Workspace(cfg, tmp_path / "run"), resolve_model=False).config
    assert (c.data.train_batch_size, c.actor_rollout_ref.rollout.n) == (32, 8)
    assert c.trainer.total_training_steps == cfg.train.steps
    assert c.data.custom_cls.name == "SECDataset"


# --------------------------------------------------------------------------------------- end to end


def test_two_league_jobs_run_end_to_end_on_the_tiny_profile(tmp_path):
    sweep, report = tmp_path / "sweep", tmp_path / "report"
    r = subprocess.run(
        [sys.executable, "-m", "sec.launch", "-m", "experiment=league", "profile=tiny", "curriculum=sec_greso,mopps",
         "seed=0", "train.save_every=0", f"hydra.sweep.dir={sweep}"],
        cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert r.returncode == 0, f"sweep failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    assert report_main([str(sweep), "--out", str(report)]) == 0
    table = pd.read_csv(report / "league.csv")
    assert sorted(table["curriculum"]) == ["mopps", "sec_greso"] and (table["rollouts"] == 2 * 2 * 2).all()
    assert (table["overhead ms per step mean"] > 0).all()  # measured in the runs
    assert "## League table" in (report / "index.md").read_text()


@pytest.mark.slow
def test_the_league_end_to_end(tmp_path):
    """sweeps/league.sh as it ships (docs/league.md has its time): 50 runs, then the report with every
    curriculum minus random paired over 5 seeds."""
    env = {
        "PATH": "/usr/bin:/bin", "PY": sys.executable, "SWEEP": str(tmp_path / "sweep"),
        "REPORT": str(tmp_path / "report"), "HOME": str(tmp_path),
        "SEC_CACHE_DIR": os.environ.get("SEC_CACHE_DIR", str(tmp_path / "cache")),
    }  # fmt: skip
    r = subprocess.run(
        ["bash", "sweeps/league.sh"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=6 * 3600
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    table = pd.read_csv(tmp_path / "report" / "league.csv")
    assert sorted(table["curriculum"]) == sorted(LEAGUE) and (table["seeds"] == 5).all()
    assert table["rollouts"].nunique() == 1
    others = table[table["curriculum"] != "random"]
    assert (others["id pass@1 final pairs"] == 5).all() and others["ood pass@1 final ci low"].notna().all()
