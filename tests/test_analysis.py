"""analysis/: the loader on a real tiny sweep (experiment=table1), the best-checkpoint rule, the
tables (mean ± std, highlights, LaTeX/CSV), the side by side with the paper, the figures read back
from the figure objects and the PNG files, the wandb history inverse, the report command and the
curriculum comparison. The published numbers: test_paper_numbers.py; the sweep definitions and
the paired comparison: test_experiments.py."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from analysis import figures, paper, tables
from analysis.load import load_runs, records_from_wandb_history
from analysis.report import main as report_main
from analysis.summary import hardest_train_level, level_slope, overview, run_summary, slope_intervals
from conftest import ROOT
from sec.metrics import MetricsWriter, read_metrics

# --------------------------------------------------------------------------- a real tiny sweep

SWEEP_ARGS = (
    "experiment=table1",
    "profile=tiny",
    "task=countdown",
    "curriculum=random,sec",
    "seed=0,1",
    "train.save_every=0",
)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Table 1's experiment on the tiny profile, one task, random vs SEC, 2 seeds: 4 real jobs."""
    out = tmp_path_factory.mktemp("analysis") / "sweep"
    r = subprocess.run(
        [sys.executable, "-m", "sec.launch", "-m", *SWEEP_ARGS, f"hydra.sweep.dir={out}"],
        cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert r.returncode == 0, f"sweep failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    return out


def test_loader_reads_the_real_sweep(sweep):
    runs = load_runs([sweep])
    assert runs.skipped == [] and runs.unfinished == []
    per_run = runs.train.groupby("run").agg(
        tag=("tag", "first"), model=("model", "first"), cur=("curriculum", "first"), seed=("seed", "first")
    )
    assert len(per_run) == 4 and set(per_run["tag"]) == {"table1"} and set(per_run["model"]) == {"tiny"}
    assert sorted(zip(per_run["cur"], per_run["seed"], strict=True)) == [
        ("random", 0),
        ("random", 1),
        ("sec", 0),
        ("sec", 1),
    ]
    assert runs.train.groupby("run")["step"].apply(list).map(sorted).tolist() == [[1, 2]] * 4
    assert (runs.train["dataset_level_mean"] == 2.0).all() and runs.train["done"].all()
    assert runs.train["curriculum/sampled_level_mean"].between(1, 3).all()
    # the two seeds of a cell share their config id, the two curricula do not
    ids = runs.train.groupby("run")[["curriculum", "config_id"]].first()
    assert ids.groupby("curriculum")["config_id"].nunique().tolist() == [1, 1] and ids["config_id"].nunique() == 2
    e = runs.eval
    assert set(e["split"]) == {"id", "ood", "level_1", "level_2", "level_3", "level_4"}
    assert set(e["task"]) == {"countdown"} and set(e["run_task"]) == {"countdown"}
    assert e.groupby("run")["step"].unique().map(sorted).tolist() == [[1, 2]] * 4
    assert e["pass@1"].between(0, 1).all() and set(runs.configs) == set(per_run.index)


def test_loader_reports_failed_and_unfinished_runs(sweep, tmp_path):
    root = tmp_path / "mixed"
    shutil.copytree(sweep, root)
    jobs = sorted(p for p in root.iterdir() if (p / "metrics.jsonl").exists())
    # a job that failed before its first step: Hydra dir and log, no metrics
    failed = root / "9_failed"
    (failed / ".hydra").mkdir(parents=True)
    shutil.copy(jobs[0] / "config.yaml", failed / "config.yaml")
    (failed / "launch.log").write_text("[sec.workspace] loading\nValueError: backend=trl offers algorithm=grpo|rloo\n")
    # a job killed after step 1: no done.json, metrics cut after the first records
    cut = jobs[1]
    (cut / "done.json").unlink()
    kept = [r for r in read_metrics(cut / "metrics.jsonl") if r["step"] <= 1]
    (cut / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept) + '{"torn')
    runs = load_runs([root])
    assert len(runs.skipped) == 1 and runs.skipped[0][0] == str(failed)
    assert "no metrics.jsonl" in runs.skipped[0][1] and "backend=trl offers" in runs.skipped[0][1]
    assert runs.unfinished == [(str(cut), 1)]
    assert runs.train["run"].nunique() == 4 and set(runs.eval.loc[runs.eval["run"] == str(cut), "step"]) == {1}
    only = load_runs([root], finished_only=True)
    assert (str(cut), "unfinished (no done.json), last step 1") in only.skipped
    assert only.train["run"].nunique() == 3


def test_failed_runs_are_listed_with_their_error(sweep, tmp_path):
    """issue 15 item 3: a run with failed.json is named with the error it records, in the loader and
    in the report: one that failed before its first step (a real `sec.launch` whose data cache is a
    file) and one that failed after step 1 (a finished job cut back, its failure recorded by the
    Workspace's own recorder)."""
    from omegaconf import OmegaConf

    from sec.workspace import FAILED, Workspace

    root = tmp_path / "mixed"
    shutil.copytree(sweep, root)
    not_a_dir = tmp_path / "cache_is_a_file"
    not_a_dir.write_text("")
    early = root / "8_early"
    r = subprocess.run(
        [sys.executable, "-m", "sec.launch", "profile=tiny", "task=countdown", f"hydra.run.dir={early}"],
        cwd=ROOT, env=dict(os.environ, SEC_CACHE_DIR=str(not_a_dir)), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode != 0 and (early / "failed.json").exists() and not (early / "metrics.jsonl").exists()
    (early / "launch.log").unlink(missing_ok=True)  # the reason must come from failed.json (no log under SLURM)
    early_error = json.loads((early / "failed.json").read_text())["error"]
    assert early_error.startswith("NotADirectoryError")
    late = sorted(p for p in root.iterdir() if (p / "done.json").exists())[0]
    (late / "done.json").unlink()
    kept = [r for r in read_metrics(late / "metrics.jsonl") if r["step"] <= 1]
    (late / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    Workspace(OmegaConf.load(late / "config.yaml"), late)._record(FAILED, {"error": "RuntimeError: boom at step 2"})
    runs = load_runs([root])
    assert (str(early), f"no metrics.jsonl: failed or stopped before its first step; failed.json: {early_error}") in (
        runs.skipped
    )
    assert runs.failed == {str(late): "RuntimeError: boom at step 2"}
    index = root.parent / "report"
    assert report_main([str(root), "--out", str(index)]) == 0
    text = (index / "index.md").read_text()
    assert f"- failed `{late}` after step 1: RuntimeError: boom at step 2" in text
    assert (
        f"- skipped `{early}`: no metrics.jsonl: failed or stopped before its first step; failed.json: {early_error}"
        in (text)
    )


def _numeric(r: dict) -> dict:
    return {k: v for k, v in r.items() if k not in ("kind", "step") and isinstance(v, (int, float))}


def test_wandb_history_inverts_what_the_writer_logs(sweep):
    """metrics.jsonl -> the writer's wandb view -> wandb history rows (logs of one step merged,
    `_step` added) -> records_from_wandb_history gives the same train and eval values back."""
    job = next(p for p in sorted(sweep.iterdir()) if (p / "metrics.jsonl").exists())
    records = read_metrics(job / "metrics.jsonl")
    rows: dict[int, dict] = {}
    for r in records:
        rows.setdefault(r["step"], {"_step": r["step"], "_runtime": 1.0}).update(MetricsWriter._wandb_view(r))
    back = records_from_wandb_history(rows.values())
    train = [r for r in records if r["kind"] == "train"]
    assert [_numeric(r) for r in back if r["kind"] == "train"] == [_numeric(r) for r in train]
    evals = {(r["step"], r["task"], r["split"]): r["pass@1"] for r in records if r["kind"] == "eval"}
    assert {(r["step"], r["task"], r["split"]): r["pass@1"] for r in back if r["kind"] == "eval"} == evals


# --------------------------------------------------------------------------- best checkpoint


def _evals(rows: list[tuple]) -> pd.DataFrame:
    cols = ["run", "task", "split", "step", "pass@1"]
    df = pd.DataFrame(rows, columns=cols)
    return df.assign(seed=0, model="m", algorithm="grpo", curriculum="sec", run_task="t")


def test_best_checkpoint_takes_the_id_best_step_for_every_split():
    # ID is best at step 10, OOD at step 20
    e = _evals(
        [
            ("a", "t", "id", 10, 0.8),
            ("a", "t", "ood", 10, 0.3),
            ("a", "t", "id", 20, 0.7),
            ("a", "t", "ood", 20, 0.5),
            ("a", "t", "id", 30, 0.8),  # a tie with step 10: the earliest wins
            ("a", "t", "ood", 30, 0.1),
        ]
    )
    best = tables.best_checkpoint(e).set_index("split")
    assert best.loc["id", "step"] == 10 and best.loc["ood", "step"] == 10
    assert best.loc["ood", "pass@1"] == 0.3 and set(best["selected_on"]) == {"id"}
    per = tables.best_checkpoint(e, per_split=True).set_index("split")
    assert per.loc["id", "step"] == 10 and per.loc["ood", "step"] == 20 and per.loc["ood", "pass@1"] == 0.5
    on_ood = tables.best_checkpoint(e, select_split="ood").set_index("split")
    assert on_ood.loc["id", "step"] == 20


def test_best_checkpoint_of_a_mix_and_of_runs_without_an_id_split():
    mix = _evals(
        [
            ("m", "countdown", "id", 10, 0.9),
            ("m", "zebra", "id", 10, 0.1),
            ("m", "countdown", "id", 20, 0.6),
            ("m", "zebra", "id", 20, 0.5),  # mean 0.55 > 0.5: step 20 for both tasks
        ]
    )
    assert set(tables.best_checkpoint(mix)["step"]) == {20}
    math = _evals(
        [
            ("x", "math", "math500", 10, 0.6),
            ("x", "math", "aime24", 10, 0.0),
            ("x", "math", "math500", 20, 0.5),
            ("x", "math", "aime24", 20, 0.2),
            ("x", "math", "level_1", 10, 1.0),  # per-level splits do not select
        ]
    )
    best = tables.best_checkpoint(math)
    assert set(best["step"]) == {20} and set(best["selected_on"]) == {"mean of math500/aime24"}


# --------------------------------------------------------------------------- tables


def _best(values: dict[tuple[str, int], float]) -> pd.DataFrame:
    rows = []
    for (cur, seed), v in values.items():
        for split, x in (("id", v), ("ood", v / 2)):
            rows.append(
                {
                    "run": f"{cur}{seed}",
                    "task": "countdown",
                    "split": split,
                    "model": "qwen2.5_3b",
                    "algorithm": "grpo",
                    "curriculum": cur,
                    "seed": seed,
                    "step": 10 * (seed + 1),
                    "pass@1": x,
                }
            )
    return pd.DataFrame(rows)


def test_aggregate_mean_std_ranks_and_renderings():
    b = _best(
        {
            ("random", 0): 0.50,
            ("random", 1): 0.70,
            ("ordered", 0): 0.40,
            ("ordered", 1): 0.40,
            ("sec", 0): 0.80,
            ("sec", 1): 0.90,
        }
    )
    t = tables.aggregate(b, tables.TABLE1)
    c = t.cells.set_index(["split", "curriculum"])
    assert c.loc[("id", "random"), "mean"] == pytest.approx(0.6)
    assert c.loc[("id", "random"), "std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert c.loc[("id", "sec"), "n"] == 2 and c.loc[("id", "sec"), "seeds"] == "0,1"
    assert c.loc[("id", "sec"), "steps"] == "10,20"
    assert [c.loc[("id", k), "rank"] for k in ("sec", "random", "ordered")] == [1, 2, 0]
    md = tables.to_markdown(t)
    assert md.splitlines()[0] == "| task | split | random | ordered | SEC |"
    assert "| Countdown | ID | <u>0.600 ± 0.141</u> | 0.400 ± 0.000 | **0.850 ± 0.071** |" in md
    tex = tables.to_latex(t)
    assert r"$\textbf{0.850} \pm 0.071$" in tex and r"$\underline{0.600} \pm 0.141$" in tex
    assert "\\toprule" in tex and tex.count("\\\\") == 3
    csv = pd.read_csv(io.StringIO(tables.to_csv(t)))
    assert len(csv) == 6 and set(csv.columns) >= {"mean", "std", "n", "rank", "seeds"}
    gain = paper.relative_gain(t).set_index(["split", "curriculum"])["gain"]
    assert gain[("id", "sec")] == pytest.approx(0.85 / 0.6 - 1) and gain[("id", "random")] == 0


def test_ties_share_a_mark_and_equal_cells_get_none():
    b = _best({("random", 0): 0.5, ("ordered", 0): 0.7, ("sec", 0): 0.7})
    c = tables.aggregate(b, tables.TABLE1).cells.set_index(["split", "curriculum"])["rank"]
    assert [c[("id", k)] for k in ("ordered", "sec", "random")] == [1, 1, 2]
    b = _best({("random", 0): 0.0, ("sec", 0): 0.0})
    assert (tables.aggregate(b, tables.TABLE1).cells["rank"] == 0).all()


def test_a_cell_that_mixes_configs_is_named():
    b = _best({("sec", 0): 0.5, ("sec", 1): 0.6})
    configs = {"sec0": {"seed": 0, "curriculum": {"tau": 1.0}}, "sec1": {"seed": 1, "curriculum": {"tau": 0.2}}}
    t = tables.aggregate(b, tables.TABLE1, configs=configs)
    assert len(t.warnings) == 2 and all("differ in: curriculum.tau" in w for w in t.warnings)


def test_side_by_side_puts_each_cell_beside_the_paper(sweep):
    runs = load_runs([sweep])
    t = tables.aggregate(tables.best_checkpoint(runs.eval), tables.TABLE1)
    sbs = paper.side_by_side(t).set_index(["split", "curriculum"])
    # tiny is not a paper model: compared with the paper's 3B
    assert set(sbs["paper_model"]) == {"qwen2.5_3b"}
    assert sbs.loc[("ood", "sec"), "paper"] == 0.542 and sbs.loc[("id", "random"), "paper"] == 0.859
    assert sbs.loc[("ood", "sec"), "paper_gain"] == pytest.approx(0.542 / 0.479 - 1)
    assert (sbs["n"] == 2).all()
    seven = paper.side_by_side(t, paper_model="qwen2.5_7b").set_index(["split", "curriculum"])
    assert seven.loc[("ood", "sec"), "paper"] == 0.555


# --------------------------------------------------------------------------- figures


def _line_count(ax) -> int:
    return len(ax.get_lines())


def test_figure3_panels_and_lines(sweep, tmp_path):
    train = load_runs([sweep]).train
    fig = figures.difficulty_figure(train, window=2)
    (ax,) = fig.axes
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert labels == ["SEC (n=2)", "dataset mean"]
    dashed = ax.get_lines()[1]
    assert dashed.get_linestyle() == "--" and set(dashed.get_ydata()) == {2.0}
    steps, mean = ax.get_lines()[0].get_data()
    want = train[train["curriculum"] == "sec"].pivot_table(index="step", columns="run", values=figures.DIFFICULTY)
    assert list(steps) == [1, 2] and mean == pytest.approx(want.expanding().mean().mean(axis=1).to_numpy())
    png, pdf = figures.save(fig, tmp_path / "figure3")
    img = matplotlib.image.imread(png)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100 and img[..., :3].std() > 0
    assert pdf.read_bytes()[:4] == b"%PDF"

    # models as rows, tasks as columns; every curriculum drawn when asked
    other = train.assign(model="qwen2.5_7b", run=train["run"] + "-7b")
    zebra = pd.concat([train, other]).assign(run_task="zebra", run=lambda d: d["run"] + "-z")
    fig = figures.difficulty_figure(pd.concat([train, other, zebra]), curricula=["random", "sec"])
    assert len(fig.axes) == 4
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["Countdown — 7B", "Zebra — 7B", "Countdown — tiny", "Zebra — tiny"]
    assert [_line_count(ax) for ax in fig.axes] == [3, 3, 3, 3]


def test_accuracy_curves_have_one_line_per_curriculum(sweep):
    evals = load_runs([sweep]).eval
    fig = figures.accuracy_figure(evals, [("countdown", "id"), ("countdown", "ood")], window=1)
    assert len(fig.axes) == 2
    assert [[ln.get_label() for ln in ax.get_lines()] for ax in fig.axes] == [["random (n=2)", "SEC (n=2)"]] * 2
    with pytest.raises(ValueError, match="no eval records"):
        figures.accuracy_figure(evals, [("zebra", "ood")])


# --------------------------------------------------------------------------- the report command


def test_report_command_writes_tables_figures_and_index(sweep, tmp_path):
    out = tmp_path / "report"
    r = subprocess.run(
        [sys.executable, "-m", "analysis.report", str(sweep), "--out", str(out), "--window", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    index = (out / "index.md").read_text()
    for piece in ("## Table 1", "Side by side with the paper", "![figure3](figure3.png)", "table2: no runs"):
        assert piece in index
    for name in ("table1.md", "table1.tex", "table1.csv", "table1_vs_paper.csv", "figure3.png", "figure3.pdf"):
        assert (out / name).stat().st_size > 0
    cells = pd.read_csv(out / "table1.csv")
    assert sorted(cells["curriculum"]) == ["random", "random", "sec", "sec"] and (cells["n"] == 2).all()
    assert len(pd.read_csv(out / "runs.csv")) == 4
    assert matplotlib.image.imread(out / "figure3.png").size > 0
    # an empty dir: one clear line, exit code 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert report_main([str(empty), "--out", str(tmp_path / "r2")]) == 1


# --------------------------------------------------------------------------- the curriculum comparison


def test_level_slope_and_quarters_and_rollouts_per_signal_group(sweep):
    assert level_slope(np.array([0, 50, 100]), np.array([1.0, 1.5, 2.0])) == pytest.approx(1.0)  # per 100 steps
    assert level_slope(np.array([0, 1, 2]), np.array([2.0, 2.0, 2.0])) == pytest.approx(0.0)
    assert np.isnan(level_slope(np.array([3]), np.array([2.0])))
    runs = load_runs([sweep])
    per_run = run_summary(runs)
    for _, r in per_run.iterrows():
        t = runs.train[runs.train["run"] == r["run"]]
        g = runs.configs[r["run"]]["algorithm"]["num_generations"]
        wasted = t["zero_variance_frac"].mean()
        expected = np.inf if wasted == 1 else g / (1 - wasted)
        assert r["rollouts per signal group"] == pytest.approx(expected)
        lv = t.sort_values("step")["curriculum/sampled_level_mean"].to_numpy()
        assert r["level slope"] == pytest.approx(np.polyfit(t.sort_values("step")["step"], lv, 1)[0] * 100)
        assert r["level by quarter"].count(" / ") == 3
        assert r["id pass@1 best"] >= r["id pass@1 final"] - 1e-12  # the best checkpoint is at least the last
    text = overview(runs)
    assert "mean sampled level per quarter" in text and "rollouts/signal group" in text
    assert text.index("\nrandom") < text.index("\nsec")  # display order


def test_slope_intervals_and_the_hardest_training_levels_pass_at_1(sweep):
    per = pd.DataFrame({"task": ["t"] * 4, "curriculum": ["a", "a", "a", "b"], "level slope": [0.1, 0.2, 0.3, 0.5]})
    sl = slope_intervals(per).set_index("curriculum")
    half = scipy_stats.t.ppf(0.975, 2) * 0.1 / np.sqrt(3)  # std of (0.1, 0.2, 0.3) = 0.1
    assert sl.loc["a", "slope"] == pytest.approx(0.2) and sl.loc["a", "seeds"] == 3
    assert (sl.loc["a", "ci low"], sl.loc["a", "ci high"]) == pytest.approx((0.2 - half, 0.2 + half))
    assert sl.loc["b", "seeds"] == 1 and np.isnan(sl.loc["b", "ci low"])  # one seed: no interval
    assert hardest_train_level({"task": {"train_levels": [1, 2, 3]}}) == "level_3"
    assert hardest_train_level({"task": {"train_levels": ["a", 2]}}) is None and hardest_train_level({}) is None
    runs = load_runs([sweep])
    for _, r in run_summary(runs).iterrows():
        split = hardest_train_level(runs.configs[r["run"]])
        e = runs.eval[(runs.eval["run"] == r["run"]) & (runs.eval["split"] == split)].sort_values("step")
        assert split == "level_3" and len(e) >= 2
        assert r["hardest level pass@1 start"] == pytest.approx(e["pass@1"].iloc[0])
        assert r["hardest level pass@1 final"] == pytest.approx(e["pass@1"].iloc[-1])
    assert "[95% CI over seeds]" in overview(runs) and "level_3 (hardest ID)" in overview(runs)


def test_report_compares_every_metric_against_random_and_shows_the_bandit(sweep, tmp_path):
    out = tmp_path / "report"
    assert report_main([str(sweep), "--out", str(out), "--levels", "--eval-window", "1"]) == 0
    index = (out / "index.md").read_text()
    for name in ("ID pass@1 (best checkpoint)", "OOD pass@1 (last)", "rollouts per signal group",
                 "sampled level slope (/100 steps)", "### The curriculum's state over training",
                 "### pass@1 per level over training", "![level_curves](level_curves.png)"):  # fmt: skip
        assert name in index, name
    paired = pd.read_csv(out / "paired_vs_random.csv")
    assert set(paired["metric"]) >= {"id pass@1 best", "ood pass@1 best", "id pass@1 final", "level slope"}
    state = pd.read_csv(out / "bandit_state.csv")
    assert set(state.loc[state["curriculum"] == "sec", "what"]) == {"q", "prob"}
    assert set(state.loc[state["curriculum"] == "random", "what"]) == {"prob"}
