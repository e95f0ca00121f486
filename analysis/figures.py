"""The paper's figures from run frames (matplotlib's object API: no pyplot state, no display).

* Figure 3: mean sampled difficulty (``curriculum/sampled_level_mean``, the mean level of the
  batch's problems) vs training step, moving average, one panel per task (columns) and model
  (rows), with the training set's mean difficulty as a dashed line.
* Figure 4 (curve) and Figure 1: test pass@1 vs step per curriculum (moving average over
  evaluations), one panel per (task, split).

Curves average the runs of a curriculum (seeds) step by step after smoothing each run; with
several seeds a band shows +/- one standard deviation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis.tables import label, sort_values

DIFFICULTY = "curriculum/sampled_level_mean"
#: one colour per curriculum, stable across figures
COLORS = {
    "random": "tab:gray",
    "ordered": "tab:blue",
    "reverse": "tab:red",
    "sec": "tab:orange",
    "sec_2d": "tab:orange",
    "sec_ucb": "tab:green",
    "sec_thompson": "tab:purple",
    "sec_egreedy": "tab:brown",
    "sec_progress": "tab:pink",
    "sec_success": "tab:olive",
    # the peers' curricula (the league, docs/league.md)
    "sec_greso": "darkorange",
    "dump": "tab:cyan",
    "mopps": "tab:purple",
    "e2h": "tab:green",
    "e2h_cosine": "olive",
    "adarft": "tab:brown",
    "learnability": "tab:pink",
}


def smoothed_curves(
    df: pd.DataFrame, value: str, *, window: int, by: str = "curriculum"
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """Per ``by`` value: (steps, mean, std, runs) of ``value`` after a trailing moving average
    of ``window`` points within each run (``min_periods=1``: the first points average what
    exists). Steps a run lacks (an unfinished seed) are averaged over the runs that have them.

    Raises:
        ValueError: if ``window < 1``.
    """
    if window < 1:
        raise ValueError(f"moving-average window must be >= 1, got {window}")
    out = {}
    for key, g in df.dropna(subset=[value]).groupby(by):
        per_run = {
            run: r.sort_values("step").set_index("step")[value].rolling(window, min_periods=1).mean()
            for run, r in g.groupby("run")
        }
        wide = pd.DataFrame(per_run).sort_index()
        std = wide.std(axis=1, ddof=1) if wide.shape[1] > 1 else pd.Series(np.nan, index=wide.index)
        out[str(key)] = (wide.index.to_numpy(), wide.mean(axis=1).to_numpy(), std.to_numpy(), wide.shape[1])
    return out


def _plot_curves(ax, curves, ordered_keys) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for cur in ordered_keys:
        steps, mean, std, n = curves[cur]
        color = COLORS.get(cur)
        ax.plot(steps, mean, label=f"{label('curriculum', cur)} (n={n})", color=color, lw=1.8)
        if n > 1:
            ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.15, lw=0)


def difficulty_figure(
    train: pd.DataFrame,
    *,
    window: int = 10,
    curricula: Sequence[str] | None = None,
    title: str = "Figure 3: mean difficulty of the sampled problems",
) -> Figure:
    """Figure 3 (SEC.md §4).

    Args:
        train: :attr:`analysis.load.Runs.train` (``run_task``, ``model``, ``curriculum``,
            ``run``, ``step``, ``curriculum/sampled_level_mean``, ``dataset_level_mean``).
        window: moving-average window in steps.
        curricula: curricula drawn (default: those whose name starts with ``sec``, as the
            paper; pass e.g. ``["random", "ordered", "sec"]`` for reference lines).

    Returns:
        a figure with one axis per (model, task): rows models, columns tasks; each axis has
        one line per curriculum and a dashed line at the dataset's mean difficulty.

    Raises:
        ValueError: if no run has the difficulty metric for the chosen curricula.
    """
    t = train.dropna(subset=[DIFFICULTY]) if DIFFICULTY in train else train.iloc[0:0]
    t = t[t["curriculum"].isin(curricula)] if curricula is not None else t[t["curriculum"].str.startswith("sec")]
    if t.empty:
        raise ValueError(f"no train records with {DIFFICULTY} for curricula {curricula or 'sec*'}")
    models = sort_values("model", t["model"])
    tasks = sort_values("task", t["run_task"])
    fig = Figure(figsize=(4.2 * len(tasks), 3.2 * len(models)))
    axes = fig.subplots(len(models), len(tasks), squeeze=False, sharex="col")
    for i, model in enumerate(models):
        for j, task in enumerate(tasks):
            ax = axes[i][j]
            sub = t[(t["model"] == model) & (t["run_task"] == task)]
            ax.set_title(f"{label('task', task)} — {label('model', model)}")
            ax.grid(alpha=0.3)
            if sub.empty:
                ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
                continue
            curves = smoothed_curves(sub, DIFFICULTY, window=window)
            _plot_curves(ax, curves, sort_values("curriculum", curves))
            mean_level = sub["dataset_level_mean"].dropna()
            if not mean_level.empty:
                ax.axhline(float(mean_level.iloc[0]), ls="--", color="black", lw=1, label="dataset mean")
            if i == len(models) - 1:
                ax.set_xlabel("training step")
            if j == 0:
                ax.set_ylabel("sampled difficulty (level)" + (f"\nmoving avg, {window} steps" if window > 1 else ""))
            ax.legend(fontsize=8, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def accuracy_figure(
    evals: pd.DataFrame,
    panels: Sequence[tuple[str, str]],
    *,
    window: int = 3,
    curricula: Sequence[str] | None = None,
    title: str = "",
) -> Figure:
    """Test pass@1 vs training step per curriculum (Figure 4's curve, Figure 1).

    Args:
        evals: :attr:`analysis.load.Runs.eval`.
        panels: (task, split) of each panel, e.g. ``[("countdown", "ood")]``.
        window: moving-average window in evaluations.
        curricula: curricula drawn (default: all in ``evals``).

    Returns:
        a figure with one axis per panel and one line per curriculum.

    Raises:
        ValueError: if ``panels`` is empty or no eval record matches them.
    """
    if not panels:
        raise ValueError("accuracy_figure needs at least one (task, split) panel")
    e = evals if curricula is None else evals[evals["curriculum"].isin(curricula)]
    if not any(((e["task"] == t) & (e["split"] == s)).any() for t, s in panels):
        raise ValueError(f"no eval records for panels {list(panels)}")
    fig = Figure(figsize=(4.8 * len(panels), 3.4))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (task, split) in zip(axes[0], panels, strict=True):
        sub = e[(e["task"] == task) & (e["split"] == split)]
        ax.set_title(f"{label('task', task)} {label('split', split)}")
        ax.set_xlabel("training step")
        ax.set_ylabel("pass@1" + (f"\nmoving avg, {window} evals" if window > 1 else ""))
        ax.grid(alpha=0.3)
        if sub.empty:
            ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
            continue
        curves = smoothed_curves(sub, "pass@1", window=window)
        _plot_curves(ax, curves, sort_values("curriculum", curves))
        ax.set_ylim(0.0, max(ax.get_ylim()[1], 0.05))  # pass@1 >= 0; a flat 0 still gets an axis
        ax.legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def save(fig: Figure, stem: str | Path, *, dpi: int = 150) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.pdf`` (Agg / PDF canvases); returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for p in paths:
        fig.savefig(p, dpi=dpi, bbox_inches="tight")
    return paths
