"""How a run got where it ended: per-level pass@1 at every evaluation and the bandit's state (Q value
and sampling probability per arm) over training, averaged over seeds per curriculum. These are the
measurements that explain a result, e.g. why SEC did not beat random (its Q values stayed close, so
its policy stayed near uniform; or the level it favoured did not improve).

Both read only :class:`analysis.load.Runs` (``metrics.jsonl``: ``level_<k>`` eval records and the
``curriculum/<arm>/q`` / ``curriculum/<arm>/prob`` train metrics).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis import figures
from analysis.labels import label, sort_values
from analysis.load import Runs

_ARM = re.compile(r"^curriculum/(.+)/(q|prob)$")


def level_pass_rates(runs: Runs) -> pd.DataFrame:
    """pass@1 per (task, curriculum, split, step), mean and std over the seeds that have it.

    Returns:
        columns ``task``, ``curriculum``, ``split`` (``level_<k>``, ``id``, ``ood``), ``step``,
        ``mean``, ``std`` (ddof 1; NaN for one seed), ``n``; empty without eval records.
    """
    e = runs.eval
    if e.empty:
        return pd.DataFrame(columns=["task", "curriculum", "split", "step", "mean", "std", "n"])
    g = e.groupby(["task", "curriculum", "split", "step"])["pass@1"]
    return g.agg(mean="mean", std=lambda x: x.std(ddof=1), n="size").reset_index()


def level_pass_markdown(table: pd.DataFrame) -> str:
    """One markdown table per task: rows (curriculum, split), columns the evaluation steps, cells the
    mean pass@1 over seeds."""
    parts = []
    for task, t in table.groupby("task", sort=False):
        steps = sorted(t["step"].unique())
        head = "| curriculum | split | " + " | ".join(f"step {s}" for s in steps) + " |"
        lines = [head, "|---|---|" + "---|" * len(steps)]
        for cur in sort_values("curriculum", t["curriculum"]):
            for split in sort_values("split", t.loc[t["curriculum"] == cur, "split"]):
                row = t[(t["curriculum"] == cur) & (t["split"] == split)].set_index("step")["mean"]
                cells = [f"{row[s]:.3f}" if s in row.index else "-" for s in steps]
                lines.append(f"| {label('curriculum', cur)} | {label('split', split)} | " + " | ".join(cells) + " |")
        parts.append(f"**{label('task', task)}**\n\n" + "\n".join(lines) + "\n")
    return "\n".join(parts)


def level_curves(runs: Runs, *, window: int = 1) -> Figure:
    """pass@1 vs step per curriculum, one panel per ``level_<k>`` split of the first task.

    Raises:
        ValueError: without per-level eval records.
    """
    e = runs.eval
    levels = [] if e.empty else sort_values("split", [s for s in e["split"].unique() if str(s).startswith("level_")])
    if not levels:
        raise ValueError("no per-level eval records (level_<k>)")
    task = sort_values("task", e["task"])[0]
    return figures.accuracy_figure(
        e, [(task, s) for s in levels], window=window, title="pass@1 per level over training (mean ± std over seeds)"
    )


def bandit_state(runs: Runs, phases: int = 4) -> pd.DataFrame:
    """Mean Q value and sampling probability of every arm in each of ``phases`` equal parts of
    training, per (task, curriculum), averaged over steps then seeds. Curricula without Q values
    (random, ordered) report only their probabilities.

    Returns:
        columns ``task``, ``curriculum``, ``arm``, ``what`` (``q`` or ``prob``), ``phase`` (1..phases),
        ``mean``.
    """
    t = runs.train
    cols = {c: _ARM.match(c) for c in t.columns}
    cols = {c: m for c, m in cols.items() if m}
    rows = []
    for (task, cur), g in t.groupby(["run_task", "curriculum"], sort=False):
        per_run = []
        for _, r in g.groupby("run"):
            r = r.sort_values("step")
            part = np.array_split(np.arange(len(r)), phases)
            for c, m in cols.items():
                if r[c].notna().any():
                    for i, idx in enumerate(part):
                        per_run.append((m[1], m[2], i + 1, float(r[c].iloc[idx].mean()) if len(idx) else np.nan))
        if per_run:
            df = pd.DataFrame(per_run, columns=["arm", "what", "phase", "value"])
            agg = df.groupby(["arm", "what", "phase"])["value"].mean().reset_index(name="mean")
            rows.append(agg.assign(task=task, curriculum=cur))
    if not rows:
        return pd.DataFrame(columns=["task", "curriculum", "arm", "what", "phase", "mean"])
    return pd.concat(rows, ignore_index=True)[["task", "curriculum", "arm", "what", "phase", "mean"]]


def bandit_markdown(state: pd.DataFrame) -> str:
    """The bandit's state as markdown: per task and curriculum one row per arm, cells ``Q / prob`` per
    quarter of training (``-`` where a curriculum has no Q)."""
    parts = []
    for (task, cur), s in state.groupby(["task", "curriculum"], sort=False):
        phases = sorted(s["phase"].unique())
        lines = [
            "| arm | " + " | ".join(f"quarter {p}: Q / prob" for p in phases) + " |",
            "|---|" + "---|" * len(phases),
        ]
        for arm in sorted(s["arm"].unique(), key=lambda a: (len(a), a)):
            cells = []
            for p in phases:
                v = s[(s["arm"] == arm) & (s["phase"] == p)].set_index("what")["mean"]
                q = f"{v['q']:.2f}" if "q" in v.index and not np.isnan(v["q"]) else "-"
                prob = f"{v['prob']:.2f}" if "prob" in v.index and not np.isnan(v["prob"]) else "-"
                cells.append(f"{q} / {prob}")
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        parts.append(f"**{label('task', task)}, {label('curriculum', cur)}**\n\n" + "\n".join(lines) + "\n")
    return "\n".join(parts)
