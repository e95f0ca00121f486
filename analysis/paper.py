"""The published numbers (SEC.md §4, ``analysis/paper_results.csv``) as tables, and our tables
beside them with each curriculum's relative gain over random."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.labels import KEY_LABELS, label, sort_values
from analysis.tables import SPECS, Table, TableSpec, aggregate

PAPER_CSV = Path(__file__).with_name("paper_results.csv")


def paper_results(path: str | Path = PAPER_CSV) -> pd.DataFrame:
    """The published pass@1 values (SEC.md §4): columns ``source`` (``table1``, ``table2``,
    ``figure4``), ``task``, ``split``, ``model``, ``algorithm``, ``curriculum``, ``pass@1``,
    ``reference``."""
    return pd.read_csv(path, dtype={"pass@1": float})


def paper_table(source: str, paper: pd.DataFrame | None = None) -> Table:
    """The published table ``source`` as a :class:`Table` (one "seed" per cell)."""
    p = paper_results() if paper is None else paper
    p = p[p["source"] == source].assign(seed=0, step=0, run=lambda d: d.index.astype(str))
    return aggregate(p, SPECS[source], splits=None)


def relative_gain(table: Table, baseline: str = "random") -> pd.DataFrame:
    """``(curriculum - baseline) / baseline`` of the cell means, per row and group.

    Returns:
        the cell keys and ``gain`` (a fraction; NaN when the baseline is missing or 0).
    """
    spec = table.spec
    c = table.cells
    base = c[c[spec.column] == baseline].set_index([*spec.rows, *spec.groups])["mean"]
    key = pd.MultiIndex.from_frame(c[[*spec.rows, *spec.groups]])
    b = base.reindex(key).to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(b > 0, (c["mean"].to_numpy(dtype=float) - b) / b, np.nan)
    return c[spec.keys].assign(gain=gain)


def side_by_side(
    table: Table,
    paper: pd.DataFrame | None = None,
    *,
    paper_model: str | None = None,
    baseline: str = "random",
) -> pd.DataFrame:
    """Our cells next to the published ones (source = ``table.spec.name``).

    Args:
        paper_model: the paper model our runs are compared with; default: the run's own model
            when the paper has it, else ``qwen2.5_3b`` (the smaller one).

    Returns:
        the cell keys, ``paper_model``, ``ours`` (mean), ``std``, ``n``, ``paper``,
        ``ours_gain`` and ``paper_gain`` (relative to ``baseline``, fractions).
    """
    spec = table.spec
    p = paper_results() if paper is None else paper
    p = p[p["source"] == spec.name]
    paper_models = set(p["model"])
    out = table.cells[[*spec.keys, "mean", "std", "n"]].rename(columns={"mean": "ours"}).copy()
    if "model" in out:
        out["paper_model"] = [
            paper_model or (m if m in paper_models else "qwen2.5_3b") for m in out["model"].astype(str)
        ]
    else:
        out["paper_model"] = paper_model or "qwen2.5_3b"
    out["ours_gain"] = relative_gain(table, baseline)["gain"].to_numpy()
    keys = [k for k in ("task", "split", "algorithm", "curriculum") if k in spec.keys]
    ref = p.rename(columns={"model": "paper_model", "pass@1": "paper"})
    ref_gain = ref.merge(
        ref[ref["curriculum"] == baseline][[*[k for k in keys if k != "curriculum"], "paper_model", "paper"]].rename(
            columns={"paper": "base"}
        ),
        on=[*[k for k in keys if k != "curriculum"], "paper_model"],
        how="left",
    )
    ref_gain["paper_gain"] = (ref_gain["paper"] - ref_gain["base"]) / ref_gain["base"]
    merged = out.merge(ref_gain[[*keys, "paper_model", "paper", "paper_gain"]], on=[*keys, "paper_model"], how="left")
    return merged


def side_by_side_markdown(sbs: pd.DataFrame, spec: TableSpec, baseline: str = "random") -> str:
    """The side-by-side frame as markdown: one line per cell, ours (mean ± std, n seeds) and
    the paper's value, each with its gain over ``baseline``."""
    keys = [k for k in spec.keys if k in (*spec.rows, "model", spec.column) or sbs[k].nunique(dropna=False) > 1]
    head = [KEY_LABELS.get(k, k) for k in keys] + [
        "ours (mean ± std, n)",
        f"ours vs {baseline}",
        "paper model",
        "paper",
        f"paper vs {baseline}",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = [sort_values(k, sbs[k]) for k in spec.keys]
    srt = sorted(
        sbs.itertuples(index=False),
        key=lambda r: tuple(o.index(getattr(r, k)) for o, k in zip(order, spec.keys, strict=True)),
    )
    for r in srt:
        d = r._asdict()
        ours = "-" if pd.isna(d["ours"]) else f"{d['ours']:.3f}"
        if d["n"] > 1 and not pd.isna(d["std"]):
            ours += f" ± {d['std']:.3f}"
        ours += f" ({int(d['n'])})"
        lines.append(
            "| "
            + " | ".join(
                [
                    *(label(k, d[k]) for k in keys),
                    ours,
                    _pct(d["ours_gain"]) if d[spec.column] != baseline else "",
                    label("model", d["paper_model"]),
                    "-" if pd.isna(d["paper"]) else f"{d['paper']:.3f}",
                    _pct(d["paper_gain"]) if d[spec.column] != baseline else "",
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def _pct(x: float) -> str:
    return "-" if pd.isna(x) else f"{100 * x:+.1f}%"
