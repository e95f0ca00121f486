"""The league table (issue 17, docs/league.md): every curriculum of a sweep side by side at the same
rollout budget, each against random paired by seed, with what it cost.

Per (task, curriculum), over its seeds:

* ID and OOD pass@1 at the end of the budget (the last evaluation) and at the best checkpoint (the
  evaluation with the best ID pass@1, :func:`analysis.tables.best_checkpoint`): the mean, and the
  per-seed difference to random with its Student-t 95% interval
  (:func:`analysis.summary.paired_vs_baseline`);
* the *zero-variance share*: groups whose rewards all agree (``zero_variance_frac``; no gradient),
  averaged over steps;
* *rollouts per useful group*: rollouts spent / groups with nonzero reward variance, i.e.
  ``sum_t P G / sum_t P (1 - z_t)`` for ``P`` problems of ``G`` rollouts per step and zero-variance
  share ``z_t`` (= ``G / (1 - mean z)``; inf when no group carried a gradient);
* the *curriculum overhead*: mean ``curriculum/overhead_ms`` per step (the wall time of the draw and
  the update, :class:`sec.curriculum.feed.CurriculumFeed`; NaN for runs that predate the metric);
* the *rollout budget*: train steps x ``train.prompts_per_step`` x ``algorithm.num_generations`` of
  each run, so a table whose budgets differ (an unfinished run, a changed setting) says so.

:func:`league_figure` draws Figure 3 per curriculum: one panel each, the sampled level over steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis import figures
from analysis.labels import label, sort_values
from analysis.load import Runs
from analysis.summary import DIFFICULTY, paired_vs_baseline, run_summary

__all__ = ["LEAGUE_METRICS", "OVERHEAD", "league_figure", "league_markdown", "league_section", "league_table"]

OVERHEAD = "curriculum/overhead_ms"
#: the pass@1 columns of the table, each with its paired difference to the baseline
LEAGUE_METRICS = ("id pass@1 final", "ood pass@1 final", "id pass@1 best", "ood pass@1 best")
#: per-run cost columns, shown as mean ± std over seeds
COSTS = ("zero-variance share", "rollouts per useful group", "overhead ms per step")


def _setting(cfg: dict, group: str, key: str) -> float:
    v = (cfg.get(group) or {}).get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")


def run_costs(runs: Runs) -> pd.DataFrame:
    """One row per run: ``run``, ``rollouts`` (the budget spent: the last ``budget/rollouts``,
    sec/budget.py, dropped groups of dynamic sampling included; for runs without budget fields,
    logged train steps x prompts per step x rollouts per problem), ``zero-variance share``,
    ``rollouts per useful group`` (rollouts / ``budget/signal_groups``, or from the zero-variance
    share without budget fields) and ``overhead ms per step`` (module doc)."""
    rows = []
    for run, t in runs.train.groupby("run", sort=False):
        cfg = runs.configs.get(run, {})
        prompts, g = _setting(cfg, "train", "prompts_per_step"), _setting(cfg, "algorithm", "num_generations")
        z = t["zero_variance_frac"].dropna().to_numpy(dtype=float) if "zero_variance_frac" in t else np.array([])
        rollouts = t["step"].nunique() * prompts * g
        with np.errstate(divide="ignore", invalid="ignore"):  # no useful group: inf
            per_useful = np.divide(len(z) * prompts * g, np.sum(prompts * (1.0 - z))) if len(z) else np.nan
            budget = t.sort_values("step")
            if "budget/rollouts" in t and budget["budget/rollouts"].notna().any():
                rollouts = float(budget["budget/rollouts"].dropna().iloc[-1])
                per_useful = np.divide(rollouts, float(budget["budget/signal_groups"].dropna().iloc[-1]))
        overhead = t[OVERHEAD].dropna() if OVERHEAD in t else pd.Series(dtype=float)
        rows.append(
            {
                "run": run,
                "rollouts": rollouts,
                "zero-variance share": float(z.mean()) if len(z) else np.nan,
                "rollouts per useful group": float(per_useful),
                "overhead ms per step": float(overhead.mean()) if len(overhead) else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=["run", "rollouts", *COSTS])


def league_table(runs: Runs, baseline: str = "random", level: float = 0.95) -> pd.DataFrame:
    """The league table, one row per (task, curriculum) in display order.

    Columns: ``task``, ``curriculum``, ``seeds``, ``rollouts`` (the budget of its runs; their mean
    when they differ), ``budgets`` (the distinct budgets, ``"a / b"`` when they differ), for each of
    :data:`LEAGUE_METRICS` ``<m> mean`` and the paired ``<m> diff`` / ``<m> ci low`` /
    ``<m> ci high`` / ``<m> pairs`` (NaN for the baseline and where no seed pairs), and for each of
    :data:`COSTS` ``<c> mean`` / ``<c> std`` (ddof 1).

    Raises:
        ValueError: without train records.
    """
    if runs.train.empty:
        raise ValueError("no runs for the league table")
    # run_costs' rollouts (with the fallback for runs without budget fields) replace the summary's
    per_run = run_summary(runs).drop(columns=["rollouts", "rollouts per signal group"]).merge(run_costs(runs), on="run")
    paired = paired_vs_baseline(per_run, baseline=baseline, metrics=LEAGUE_METRICS, level=level)
    paired = paired.set_index(["task", "curriculum", "metric"]) if not paired.empty else paired
    rows = []
    for task, t in per_run.groupby("task", sort=False):
        for cur in sort_values("curriculum", t["curriculum"]):
            c = t[t["curriculum"] == cur]
            budgets = sorted({int(b) for b in c["rollouts"].dropna()})
            row = {"task": task, "curriculum": cur, "seeds": c["seed"].nunique(), "rollouts": c["rollouts"].mean()}
            row["budgets"] = " / ".join(map(str, budgets))
            for m in LEAGUE_METRICS:
                row[f"{m} mean"] = c[m].mean()
                key = (task, cur, m)
                has = not paired.empty and key in paired.index
                row[f"{m} diff"] = paired.loc[key, "diff mean"] if has else np.nan
                row[f"{m} ci low"] = paired.loc[key, "ci low"] if has else np.nan
                row[f"{m} ci high"] = paired.loc[key, "ci high"] if has else np.nan
                row[f"{m} pairs"] = paired.loc[key, "seeds"] if has else 0
            for cost in COSTS:
                # a run without a useful group costs inf rollouts per useful group: so does its curriculum
                with np.errstate(invalid="ignore"):  # the std of an inf is NaN
                    row[f"{cost} mean"], row[f"{cost} std"] = c[cost].mean(), c[cost].std(ddof=1)
            rows.append(row)
    return pd.DataFrame(rows)


def _num(x: float, fmt: str = ".3f") -> str:
    return "-" if pd.isna(x) else format(x, fmt)


def _pm(mean: float, std: float, fmt: str) -> str:
    return _num(mean, fmt) if pd.isna(std) else f"{_num(mean, fmt)} ± {_num(std, fmt)}"


def _diff(r: pd.Series, m: str) -> str:
    if pd.isna(r[f"{m} diff"]):
        return "-"
    ci = "" if pd.isna(r[f"{m} ci low"]) else f" [{r[f'{m} ci low']:+.3f}, {r[f'{m} ci high']:+.3f}]"
    return f"{r[f'{m} diff']:+.3f}{ci}"


def league_markdown(table: pd.DataFrame, baseline: str = "random") -> str:
    """The table as markdown: per task, the pass@1 at the end of the budget with the costs, then the
    pass@1 at the best checkpoint; a note when the runs' budgets differ."""
    parts = []
    for task, t in table.groupby("task", sort=False):
        base = label("curriculum", baseline)
        head = ["curriculum", "seeds", "ID pass@1", f"ID − {base} [95% CI]", "OOD pass@1", f"OOD − {base} [95% CI]",
                "zero-variance share", "rollouts per useful group", "overhead ms/step", "rollouts"]  # fmt: skip
        best = ["curriculum", "ID pass@1", f"ID − {base} [95% CI]", "OOD pass@1", f"OOD − {base} [95% CI]"]
        rows, best_rows = [], []
        for _, r in t.iterrows():
            name = label("curriculum", r["curriculum"])
            rows.append([
                name, str(r["seeds"]), _num(r["id pass@1 final mean"]), _diff(r, "id pass@1 final"),
                _num(r["ood pass@1 final mean"]), _diff(r, "ood pass@1 final"),
                _pm(r["zero-variance share mean"], r["zero-variance share std"], ".3f"),
                _pm(r["rollouts per useful group mean"], r["rollouts per useful group std"], ".1f"),
                _pm(r["overhead ms per step mean"], r["overhead ms per step std"], ".2f"), r["budgets"] or "-",
            ])  # fmt: skip
            best_rows.append([
                name, _num(r["id pass@1 best mean"]), _diff(r, "id pass@1 best"), _num(r["ood pass@1 best mean"]),
                _diff(r, "ood pass@1 best"),
            ])  # fmt: skip
        budgets = {b for b in t["budgets"] if b}
        note = "" if len(budgets) <= 1 else f"\n> **Warning:** the runs' rollout budgets differ: {sorted(budgets)}\n"
        parts.append(
            f"**{label('task', task)}**: pass@1 at the end of the budget (last evaluation)\n\n"
            + _md(head, rows)
            + note
            + f"\n**{label('task', task)}**: pass@1 at the best checkpoint (best ID evaluation)\n\n"
            + _md(best, best_rows)
        )
    return "\n".join(parts)


def _md(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)]) + "\n"


def league_figure(train: pd.DataFrame, *, window: int = 10, ncols: int = 5) -> Figure:
    """Figure 3 per curriculum: one panel per (task, curriculum), the mean sampled level over steps
    (trailing moving average of ``window`` steps per run, then mean ± std over seeds), random's curve
    as a grey reference line in every panel and the training set's mean level dashed.

    Raises:
        ValueError: without ``curriculum/sampled_level_mean`` records.
    """
    t = train.dropna(subset=[DIFFICULTY]) if DIFFICULTY in train else train.iloc[0:0]
    if t.empty:
        raise ValueError(f"no train records with {DIFFICULTY}")
    tasks = sort_values("task", t["run_task"])
    panels = [
        (task, c) for task in tasks for c in sort_values("curriculum", t.loc[t["run_task"] == task, "curriculum"])
    ]
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(3.2 * min(ncols, len(panels)), 2.6 * nrows))
    axes = fig.subplots(nrows, min(ncols, len(panels)), squeeze=False, sharex=True, sharey=True)
    lo, hi = float(t[DIFFICULTY].min()), float(t[DIFFICULTY].max())
    for ax, (task, cur) in zip(axes.flat, panels, strict=False):
        sub = t[t["run_task"] == task]
        curves = figures.smoothed_curves(sub[sub["curriculum"].isin([cur, "random"])], DIFFICULTY, window=window)
        if cur != "random" and "random" in curves:
            ax.plot(curves["random"][0], curves["random"][1], color="tab:gray", lw=1, alpha=0.7, label="random")
        steps, mean, std, n = curves[cur]
        color = figures.COLORS.get(cur, "tab:blue")
        ax.plot(steps, mean, color=color, lw=1.8, label=f"{label('curriculum', cur)} (n={n})")
        if n > 1:
            ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2, lw=0)
        mean_level = sub["dataset_level_mean"].dropna() if "dataset_level_mean" in sub else pd.Series(dtype=float)
        if not mean_level.empty:
            ax.axhline(float(mean_level.iloc[0]), ls="--", color="black", lw=0.8)
        title = label("curriculum", cur) + (f" — {label('task', task)}" if len(tasks) > 1 else "")
        ax.set_title(f"{title} (n={n})", fontsize=9)
        ax.set_ylim(lo - 0.1, hi + 0.1)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    for ax in axes[:, 0]:
        ax.set_ylabel("sampled level")
    fig.suptitle(
        "Figure 3 per curriculum: mean sampled level (mean ± std over seeds"
        + (f", moving avg {window} steps" if window > 1 else "")
        + "; grey: random; dashed: training set mean)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


ABOUT = (
    "Every curriculum at the same rollout budget (train steps × problems per step × rollouts per problem; the "
    "*rollouts* column, per run). *pass@1*: mean over seeds; *− random*: per seed, the curriculum's value minus "
    "random's, mean over seeds with the Student-t 95% interval (`analysis.summary.paired_vs_baseline`; an interval "
    "containing 0 is not resolved at this number of seeds). *Zero-variance share*: groups whose rewards all agree "
    "(no gradient), averaged over steps. *Rollouts per useful group*: rollouts spent / groups with nonzero reward "
    "variance. *Overhead*: the curriculum's wall time per step (draw + update, `curriculum/overhead_ms`). Costs: "
    "mean ± std over seeds.\n"
)


def league_section(out: Path, runs: Runs, *, window: int = 10, baseline: str = "random") -> str:
    """Write ``league.csv``, ``league.md`` and ``league_figure3.png`` / ``.pdf`` into ``out``; return
    the report section (markdown)."""
    table = league_table(runs, baseline=baseline)
    table.to_csv(out / "league.csv", index=False, float_format="%.6g")
    md = league_markdown(table, baseline=baseline)
    (out / "league.md").write_text(f"# League table\n\n{ABOUT}\n{md}")
    body = [f"## League table: every curriculum at the same rollout budget\n\n{ABOUT}\n{md}"]
    try:
        fig = league_figure(runs.train, window=window)
    except ValueError as e:
        body.append(f"(no Figure 3 per curriculum: {e})\n")
    else:
        figures.save(fig, out / "league_figure3")
        body.append(
            "![league_figure3](league_figure3.png)\n\nFiles: [league.md](league.md) · [league.csv](league.csv) · "
            "[league_figure3.png](league_figure3.png) · [league_figure3.pdf](league_figure3.pdf)\n"
        )
    return "\n".join(body)
