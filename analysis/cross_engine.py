"""The cross-engine check (docs/verl.md): the same runs on TRL and on verl (its own loop on the
CPU), side by side.

Three tables, from run dirs of both engines (``backend`` in each run's config):

1. per engine and curriculum, mean ± std over seeds: the wasted share (groups whose rewards all
   agree), and pass@1 per evaluated level at the first evaluation (step 0: the same model on
   both engines, so it tests the two evaluation paths) and at the last;
2. each curriculum minus random, paired by seed, on each engine (95% Student-t intervals,
   :func:`analysis.summary.paired_vs_baseline`): does the curriculum's effect agree?
3. verl minus TRL, paired by (curriculum, seed): where the engines differ beyond the interval.

    python -m analysis.cross_engine multirun/cross_engine_trl multirun/cross_engine_verl [--out report/cross_engine]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.load import Runs, load_runs
from analysis.summary import paired_vs_baseline, run_summary

#: the engines' names in ``backend.name`` and in the tables
ENGINES = {"trl": "TRL", "verl": "verl (CPU)"}


def per_run(runs: Runs) -> pd.DataFrame:
    """:func:`analysis.summary.run_summary` plus ``backend`` and, per evaluated level,
    ``level_<k> first`` / ``level_<k> last`` (pass@1 at the run's first and last evaluation)."""
    rows = run_summary(runs)
    backend = runs.train.groupby("run")["backend"].first()
    rows["backend"] = rows["run"].map(backend)
    levels = runs.eval[runs.eval["split"].astype(str).str.startswith("level_")]
    for split, e in levels.groupby("split"):
        by_run = e.groupby(["run", "step"])["pass@1"].mean().reset_index().sort_values("step")
        first = by_run.groupby("run")["pass@1"].first()
        last = by_run.groupby("run")["pass@1"].last()
        rows[f"{split} first"] = rows["run"].map(first)
        rows[f"{split} last"] = rows["run"].map(last)
    return rows


def level_columns(frame: pd.DataFrame) -> list[str]:
    return sorted(c for c in frame if c.startswith("level_") and c.endswith((" first", " last")))


def engine_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (backend, curriculum): seeds, and mean / std over seeds of the wasted share and of
    every level's first and last pass@1."""
    metrics = ["wasted", *level_columns(rows)]
    g = rows.groupby(["backend", "curriculum"], sort=True)
    out = g.size().rename("seeds").to_frame()
    for m in metrics:
        out[f"{m} mean"] = g[m].mean()
        out[f"{m} std"] = g[m].std(ddof=1)
    return out.reset_index()


def curriculum_effect(rows: pd.DataFrame, metrics: Iterable[str]) -> pd.DataFrame:
    """Each curriculum minus random, paired by seed, per engine (``task`` holds the engine)."""
    frames = []
    for backend, r in rows.groupby("backend", sort=True):
        frames.append(paired_vs_baseline(r.assign(task=backend), metrics=tuple(metrics)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def engine_difference(rows: pd.DataFrame, metrics: Iterable[str]) -> pd.DataFrame:
    """verl minus TRL, paired by seed within each curriculum (``task`` holds the curriculum,
    ``curriculum`` the engine)."""
    frame = rows.assign(task=rows["curriculum"], curriculum=rows["backend"])
    return paired_vs_baseline(frame, baseline="trl", metrics=tuple(metrics))


def _pm(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "-"
    return f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}"


def _ci(r: pd.Series) -> str:
    ci = "-" if pd.isna(r["ci low"]) else f"[{r['ci low']:+.3f}, {r['ci high']:+.3f}]"
    return f"{r['diff mean']:+.3f} {ci}"


def markdown(rows: pd.DataFrame) -> str:
    """The three tables (module doc) as markdown."""
    levels = level_columns(rows)
    table = engine_table(rows)
    head = ["engine", "curriculum", "seeds", "wasted", *levels]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        cells = [ENGINES.get(r["backend"], r["backend"]), r["curriculum"], str(r["seeds"])]
        cells += [_pm(r[f"{m} mean"], r[f"{m} std"]) for m in ["wasted", *levels]]
        lines.append("| " + " | ".join(cells) + " |")
    out = ["### Per engine and curriculum (mean ± std over seeds)", "", *lines, ""]

    metrics = ["wasted", "id pass@1 final", "ood pass@1 final", *(c for c in levels if c.endswith(" last"))]
    effect = curriculum_effect(rows, metrics)
    if not effect.empty:
        out += ["### Each curriculum minus random, paired by seed (mean [95% CI])", ""]
        curricula = sorted(effect["curriculum"].unique())
        head = [
            "metric",
            *(f"{c} − random, {ENGINES.get(e, e)}" for c in curricula for e in sorted(rows["backend"].unique())),
        ]
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for m in metrics:
            cells = [m]
            for c in curricula:
                for e in sorted(rows["backend"].unique()):
                    hit = effect[(effect["metric"] == m) & (effect["curriculum"] == c) & (effect["task"] == e)]
                    cells.append(_ci(hit.iloc[0]) if len(hit) else "-")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")

    diff = engine_difference(rows, ["wasted", "id pass@1 final", "ood pass@1 final", *levels])
    if not diff.empty:
        out += ["### verl minus TRL, paired by seed (mean [95% CI])", ""]
        curricula = sorted(diff["task"].unique())
        head = ["metric", *curricula]
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for m in ["wasted", "id pass@1 final", "ood pass@1 final", *levels]:
            cells = [m]
            for c in curricula:
                hit = diff[(diff["metric"] == m) & (diff["task"] == c)]
                cells.append(_ci(hit.iloc[0]) if len(hit) else "-")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("roots", nargs="+", help="sweep or run dirs of both engines")
    ap.add_argument("--out", type=Path, default=None, help="also write cross_engine.md and per_run.csv here")
    args = ap.parse_args(argv)
    runs = load_runs(args.roots, finished_only=True)
    if runs.train.empty:
        print("no finished runs under " + " ".join(args.roots), file=sys.stderr)
        return 1
    rows = per_run(runs)
    if set(rows["backend"]) != set(ENGINES):
        print(f"need runs of both engines, found {sorted(set(rows['backend']))}", file=sys.stderr)
        return 1
    text = markdown(rows)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cross_engine.md").write_text("# Cross-engine check\n\n" + text)
        rows.drop(columns=["run"]).replace([np.inf, -np.inf], np.nan).to_csv(
            args.out / "per_run.csv", index=False, float_format="%.6g"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
