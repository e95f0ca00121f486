"""Result tables of the paper (Table 1, Table 2, Figure 4's table) from eval records: the best
checkpoint, mean +/- std over seeds, Markdown / LaTeX / CSV. The published numbers beside them are in
:mod:`analysis.paper`, display labels and order in :mod:`analysis.labels`.

Best checkpoint (SEC.md §3: "reported at the best checkpoint"): for every run, the evaluation
step with the best ID pass@1 (for a task mix, the mean ID pass@1 over its tasks; ties: the
earliest step); that step's pass@1 is reported for every split, so ID and OOD come from one
model. ``per_split=True`` instead takes each (task, split)'s own best step (an upper bound: it
picks a checkpoint per split with the test set). Runs without an ``id`` split select on the mean
over their non-level splits. Seeds: mean +/- sample standard deviation (ddof 1) over the runs of
a cell.

Cells are highlighted within a row and column group (e.g. one model), as in the paper: the
best value (rounded to the shown 3 decimals) bold, the second best underlined (only with 3 or
more cells; ties share the mark; nothing is marked when all are equal).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.labels import (  # noqa: F401  (re-exported: the tables' public names)
    ALGORITHM_LABELS,
    CURRICULUM_LABELS,
    KEY_LABELS,
    MAIN_SPLITS,
    MODEL_LABELS,
    ORDER,
    SPLIT_LABELS,
    TASK_LABELS,
    label,
    sort_values,
)
from analysis.load import result_config

# --------------------------------------------------------------------------- best checkpoint


def best_checkpoint(evals: pd.DataFrame, *, select_split: str = "id", per_split: bool = False) -> pd.DataFrame:
    """pass@1 of every run at its best checkpoint (rule: module docstring).

    Args:
        evals: :attr:`analysis.load.Runs.eval` (``run``, ``step``, ``task``, ``split``,
            ``pass@1`` and config columns).
        select_split: the split that picks the step.
        per_split: each (run, task, split) at its own best step instead.

    Returns:
        one row per (run, task, split): the config columns, ``step`` (the chosen step),
        ``pass@1`` and ``selected_on`` (what chose the step).
    """
    if evals.empty:
        return evals.assign(selected_on=pd.Series(dtype=str))
    e = evals.dropna(subset=["pass@1"])
    if per_split:
        idx = e.sort_values("step").groupby(["run", "task", "split"], sort=False)["pass@1"].idxmax()
        return e.loc[idx].assign(selected_on="per split").reset_index(drop=True)
    out = []
    for _, r in e.groupby("run", sort=False):
        sel = r[r["split"] == select_split]
        on = select_split
        if sel.empty:  # e.g. math: no ID split; the mean over the reported splits
            sel = r[~r["split"].astype(str).str.startswith("level_")]
            on = "mean of " + "/".join(sort_values("split", sel["split"]))
        score = sel.groupby("step")["pass@1"].mean()
        best = score.index[int(np.argmax(score.to_numpy()))]  # first maximum = earliest step
        out.append(r[r["step"] == best].assign(selected_on=on))
    return pd.concat(out, ignore_index=True)


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class TableSpec:
    """Layout of a result table.

    Args:
        name: artifact name (``table1``, ...); also the ``source`` of its published numbers.
        title: heading.
        rows: keys of a row (``task``, ``algorithm``, ``split``); those in ``hide_constant``
            are left out when they take one value.
        groups: keys of a column group (``model``, ``algorithm``); a group key that takes one
            value is left out of the header.
        column: the key of the columns within a group.
    """

    name: str
    title: str
    rows: tuple[str, ...]
    groups: tuple[str, ...]
    column: str = "curriculum"
    hide_constant: tuple[str, ...] = ()

    @property
    def keys(self) -> list[str]:
        return [*self.rows, *self.groups, self.column]


TABLE1 = TableSpec("table1", "Table 1: pass@1 at the best checkpoint", ("task", "split"), ("model", "algorithm"))
TABLE2 = TableSpec(
    "table2",
    "Table 2: PPO and RLOO on Countdown",
    ("task", "algorithm", "split"),
    ("model",),
    hide_constant=("task",),
)
FIGURE4 = TableSpec("figure4", "Figure 4: multi-task, random vs SEC-2D", ("task", "split"), ("model", "algorithm"))
SPECS = {s.name: s for s in (TABLE1, TABLE2, FIGURE4)}


@dataclass
class Table:
    """An aggregated table: ``cells`` has one row per (spec keys) with ``mean``, ``std``,
    ``n``, ``seeds``, ``steps`` (the best steps), ``rank`` (1 best, 2 second, else 0 within its
    row and group); ``warnings`` names cells that mix runs of different configs."""

    spec: TableSpec
    cells: pd.DataFrame
    warnings: list[str]

    # ---- layout helpers
    def _shown(self, keys: Sequence[str], optional: Iterable[str]) -> list[str]:
        return [k for k in keys if k not in optional or self.cells[k].nunique(dropna=False) > 1]

    @property
    def row_keys(self) -> list[str]:
        return self._shown(self.spec.rows, self.spec.hide_constant)

    @property
    def group_keys(self) -> list[str]:
        return self._shown(self.spec.groups, self.spec.groups)

    def layout(self) -> tuple[list[tuple], list[tuple]]:
        """(row tuples, column tuples = group values + column value), in display order."""
        rows = _ordered_tuples(self.cells, list(self.spec.rows))
        cols = _ordered_tuples(self.cells, [*self.spec.groups, self.spec.column])
        return rows, cols

    def cell(self, row: tuple, col: tuple) -> pd.Series | None:
        keys = [*self.spec.rows, *self.spec.groups, self.spec.column]
        m = np.ones(len(self.cells), dtype=bool)
        for k, v in zip(keys, (*row, *col), strict=True):
            m &= (self.cells[k] == v).to_numpy()
        hit = self.cells[m]
        return None if hit.empty else hit.iloc[0]

    def header(self) -> tuple[list[str], list[str]]:
        """Labels of the row-key columns and of the value columns."""
        _, cols = self.layout()
        shown = [i for i, k in enumerate(self.spec.groups) if k in self.group_keys]
        col_labels = []
        for c in cols:
            parts = [label(self.spec.groups[i], c[i]) for i in shown] + [label(self.spec.column, c[-1])]
            col_labels.append(" ".join(parts))
        return [KEY_LABELS.get(k, k) for k in self.row_keys], col_labels

    def row_labels(self, row: tuple) -> list[str]:
        return [label(k, v) for k, v in zip(self.spec.rows, row, strict=True) if k in self.row_keys]


def _ordered_tuples(df: pd.DataFrame, keys: list[str]) -> list[tuple]:
    uniq = df[keys].drop_duplicates().itertuples(index=False, name=None)
    orders = {k: sort_values(k, df[k]) for k in keys}
    return sorted(uniq, key=lambda t: tuple(orders[k].index(v) for k, v in zip(keys, t, strict=True)))


def _rank(values: pd.Series) -> pd.Series:
    """1 for the best rounded value, 2 for the second (3+ cells), 0 else; all equal: 0."""
    r = values.round(3)
    distinct = sorted(r.dropna().unique(), reverse=True)
    out = pd.Series(0, index=values.index)
    if len(distinct) < 2:
        return out
    out[r == distinct[0]] = 1
    if len(values.dropna()) >= 3:
        out[r == distinct[1]] = 2
    return out


def aggregate(
    best: pd.DataFrame,
    spec: TableSpec,
    *,
    splits: Sequence[str] | None = MAIN_SPLITS,
    configs: Mapping[str, Mapping[str, Any]] | None = None,
) -> Table:
    """Mean +/- std over seeds of the best-checkpoint pass@1 (:func:`best_checkpoint`).

    Args:
        best: best-checkpoint rows.
        spec: the layout (its keys are the cell keys).
        splits: splits kept (None: all, per-level splits included).
        configs: run -> resolved config, to warn about cells that mix configs beyond the seed.

    Returns:
        :class:`Table`.
    """
    if best.empty:
        return Table(spec, pd.DataFrame(columns=[*spec.keys, "mean", "std", "n", "seeds", "steps", "rank"]), [])
    b = best if splits is None else best[best["split"].isin(splits)]
    if splits is not None:
        # a task with named eval sets (Math: MATH500 / AMC / AIME) is reported per set, as in the
        # paper; its `id` / `ood` records only pool those sets (and pick the best checkpoint)
        named = set(b.loc[~b["split"].isin(["id", "ood"]), "task"])
        b = b[~(b["task"].isin(named) & b["split"].isin(["id", "ood"]))]
    warnings: list[str] = []
    rows = []
    for key, g in b.groupby(spec.keys, sort=False, dropna=False):
        v = g["pass@1"].astype(float)
        rows.append(
            {
                **dict(zip(spec.keys, key, strict=True)),
                "mean": v.mean(),
                "std": v.std(ddof=1) if len(v) > 1 else np.nan,
                "n": len(v),
                "seeds": ",".join(str(s) for s in sorted(g["seed"].tolist(), key=str)),
                "steps": ",".join(str(int(s)) for s in g["step"]),
            }
        )
        if configs:
            diff = _differing_keys([configs[r] for r in g["run"].unique() if r in configs])
            if diff:
                where = ", ".join(f"{k}={x}" for k, x in zip(spec.keys, key, strict=True))
                warnings.append(f"{spec.name} cell ({where}) mixes runs that differ in: {', '.join(diff)}")
    cells = pd.DataFrame(rows, columns=[*spec.keys, "mean", "std", "n", "seeds", "steps"])
    if not cells.empty:
        group_of_rank = [*spec.rows, *spec.groups]
        cells["rank"] = cells.groupby(group_of_rank, dropna=False)["mean"].transform(_rank).astype(int)
    else:
        cells["rank"] = pd.Series(dtype=int)
    return Table(spec, cells, sorted(set(warnings)))


def _differing_keys(configs: list[Mapping[str, Any]]) -> list[str]:
    flat = [result_config(c) for c in configs]
    keys = set().union(*flat) if flat else set()
    return sorted(k for k in keys if len({repr(f.get(k)) for f in flat}) > 1)


# --------------------------------------------------------------------------- rendering


def _fmt(mean: float, std: float, n: int, *, show_std: bool) -> str:
    if pd.isna(mean):
        return "-"
    if show_std and n > 1 and not pd.isna(std):
        return f"{mean:.3f} ± {std:.3f}"
    return f"{mean:.3f}"


def _marked(text: str, rank: int, bold: tuple[str, str], under: tuple[str, str]) -> str:
    if rank == 1:
        return f"{bold[0]}{text}{bold[1]}"
    if rank == 2:
        return f"{under[0]}{text}{under[1]}"
    return text


def _show_std(table: Table) -> bool:
    return bool((table.cells["n"] > 1).any()) if not table.cells.empty else False


def _rendered_rows(table: Table, render: Callable[[pd.Series], str]) -> Iterator[tuple[list[str], list[str]]]:
    """(row labels, one rendered string per column; "" where the table has no cell) per row."""
    rows, cols = table.layout()
    for row in rows:
        cells = (table.cell(row, col) for col in cols)
        yield table.row_labels(row), ["" if c is None else render(c) for c in cells]


def to_markdown(table: Table, *, highlight: bool = True) -> str:
    """GitHub markdown: best **bold**, second <u>underlined</u>; ``mean ± std`` with seeds."""
    heads, cols_l = table.header()
    show_std = _show_std(table)

    def render(c: pd.Series) -> str:
        text = _fmt(c["mean"], c["std"], int(c["n"]), show_std=show_std)
        return _marked(text, int(c["rank"]) if highlight else 0, ("**", "**"), ("<u>", "</u>"))

    lines = ["| " + " | ".join([*heads, *cols_l]) + " |", "|" + "---|" * (len(heads) + len(cols_l))]
    lines += ["| " + " | ".join([*labels, *vals]) + " |" for labels, vals in _rendered_rows(table, render)]
    return "\n".join(lines) + "\n"


def _tex(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        s = s.replace(a, b)
    return s


def to_latex(table: Table, *, highlight: bool = True, caption: str | None = None) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``): best ``\\textbf``, second
    ``\\underline``; ``$m \\pm s$`` with seeds."""
    heads, cols_l = table.header()
    show_std = _show_std(table)

    def render(c: pd.Series) -> str:
        if pd.isna(c["mean"]):
            return "-"
        m = f"{c['mean']:.3f}"
        if highlight:
            m = _marked(m, int(c["rank"]), ("\\textbf{", "}"), ("\\underline{", "}"))
        if show_std and int(c["n"]) > 1 and not pd.isna(c["std"]):
            m = f"${m} \\pm {c['std']:.3f}$"
        return m

    out = [f"% {caption or table.spec.title} (generated by analysis.report; needs \\usepackage{{booktabs}})"]
    out.append("\\begin{tabular}{" + "l" * len(heads) + "c" * len(cols_l) + "}")
    out.append("\\toprule")
    out.append(" & ".join(_tex(h) for h in [*heads, *cols_l]) + " \\\\")
    out.append("\\midrule")
    for labels, vals in _rendered_rows(table, render):
        out.append(" & ".join([*(_tex(x) for x in labels), *vals]) + " \\\\")
    out.append("\\bottomrule")
    out.append("\\end{tabular}")
    return "\n".join(out) + "\n"


def to_csv(table: Table) -> str:
    """Long format: the cell keys, ``mean``, ``std``, ``n``, ``seeds``, ``steps``, ``rank``."""
    return table.cells.to_csv(index=False, float_format="%.6g")
