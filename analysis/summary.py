"""Per run and per curriculum: pass@1 at the start and end of training, the mean sampled level
and the share of wasted rollouts.

A *wasted* rollout group is one whose rewards all agree (``zero_variance_frac`` of a train
record: TRL's ``frac_reward_zero_std``, verl's equivalent). Its advantages are all zero, so
it adds nothing to the policy gradient (SEC.md §3.2: the reason SEC prefers categories with a
large mean |advantage|).

    python -m analysis.summary multirun/2026-11-23/10-00-00 [more dirs]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from scipy import stats

from analysis.load import Runs, load_runs

__all__ = ["PAIRED_METRICS", "curriculum_summary", "paired_vs_baseline", "run_summary", "summarise"]

_SPLITS = ("id", "ood")


def run_summary(runs: Runs) -> pd.DataFrame:
    """One row per run (single-task runs; a mix reports the mean over its tasks).

    Columns: ``run``, ``task``, ``curriculum``, ``seed``, ``steps`` (last train step),
    ``<split> pass@1 start`` (the first evaluation, step 0 with ``eval.at_start``) and
    ``<split> pass@1 final`` (the last one) for ``id`` / ``ood``, ``sampled level`` (mean of
    ``curriculum/sampled_level_mean`` over steps), ``wasted`` (mean ``zero_variance_frac`` over
    steps, in [0, 1]), ``reward`` (mean training reward), ``final Q`` (the SEC values per arm at the
    last step) and ``done``.
    """
    rows = []
    for run, t in runs.train.groupby("run", sort=False):
        t = t.sort_values("step")
        e = runs.eval[runs.eval["run"] == run] if not runs.eval.empty else pd.DataFrame()
        row = {
            "run": run,
            "task": t["task"].iloc[0],
            "curriculum": t["curriculum"].iloc[0],
            "seed": t["seed"].iloc[0],
            "steps": int(t["step"].max()),
        }
        for split in _SPLITS:
            s = e[e["split"] == split] if not e.empty else e
            by_step = s.groupby("step")["pass@1"].mean() if not s.empty else pd.Series(dtype=float)
            row[f"{split} pass@1 start"] = float(by_step.iloc[0]) if len(by_step) else np.nan
            row[f"{split} pass@1 final"] = float(by_step.iloc[-1]) if len(by_step) else np.nan
        level = t.get("curriculum/sampled_level_mean")
        row["sampled level"] = float(level.mean()) if level is not None else np.nan
        wasted = t.get("zero_variance_frac")
        row["wasted"] = float(wasted.mean()) if wasted is not None else np.nan
        row["reward"] = float(t["reward_mean"].mean()) if "reward_mean" in t else np.nan
        q_cols = [c for c in t.columns if c.endswith("/q") and t[c].notna().any()]
        row["final Q"] = " ".join(f"{v:.2f}" for v in t[q_cols].iloc[-1]) if q_cols else "-"
        row["done"] = bool(t["done"].iloc[0])
        rows.append(row)
    return pd.DataFrame(rows)


def curriculum_summary(per_run: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds (``ddof=1``; NaN for one seed) per (task,
    curriculum) of :func:`run_summary`'s numeric columns, plus ``seeds`` (the count) and the
    change ``<split> gain`` = final - start pass@1 of each run, averaged."""
    df = per_run.copy()
    for split in _SPLITS:
        df[f"{split} gain"] = df[f"{split} pass@1 final"] - df[f"{split} pass@1 start"]
    cols = [
        *(f"{s} pass@1 final" for s in _SPLITS),
        *(f"{s} gain" for s in _SPLITS),
        "sampled level",
        "wasted",
        "reward",
    ]
    g = df.groupby(["task", "curriculum"], sort=False)
    out = g[cols].agg(["mean", "std"])
    out.columns = [f"{c} {stat}" for c, stat in out.columns]
    out.insert(0, "seeds", g.size())
    return out.reset_index()


PAIRED_METRICS = ("id pass@1 final", "ood pass@1 final", "wasted")


def paired_vs_baseline(
    per_run: pd.DataFrame, baseline: str = "random", metrics: tuple[str, ...] = PAIRED_METRICS, level: float = 0.95
) -> pd.DataFrame:
    """Each curriculum against ``baseline``, paired by seed: the per-seed difference
    ``curriculum - baseline`` of each metric of :func:`run_summary`.

    Pairing by seed removes what the two runs of a seed share (the model's initial sampling
    and the evaluation's sampler seed; the evaluation problems are the task's, the same for
    every run), so with a few seeds its interval is the one for "does it beat random here". Rows: one per (task,
    curriculum, metric) with ``seeds`` (n, the seeds both have a value for), ``diff mean``,
    ``diff std`` (ddof=1), ``ci low`` / ``ci high`` (the Student-t interval at ``level``:
    mean ± t_{(1+level)/2, n-1} · std / sqrt(n)) and ``p`` (two-sided), both from
    ``scipy.stats.ttest_rel``; the interval and ``p`` are NaN for n < 2, and with no spread
    (every seed the same difference) the interval is that point and ``p`` is NaN. Empty when the
    baseline has no runs. Units are those of the metric (pass@1 and the wasted share in [0, 1]).
    """
    cols = ["task", "curriculum", "metric", "seeds", "diff mean", "diff std", "ci low", "ci high", "p"]
    rows = []
    for task, t in per_run.groupby("task", sort=False):
        base = t[t["curriculum"] == baseline].set_index("seed")
        if base.empty:
            continue
        for cur, c in t[t["curriculum"] != baseline].groupby("curriculum", sort=False):
            c = c.set_index("seed")
            for m in metrics:
                pair = pd.concat([c[m].rename("x"), base[m].rename("y")], axis=1, join="inner").dropna()
                d = (pair["x"] - pair["y"]).to_numpy(dtype=float)
                n = len(d)
                if n == 0:
                    continue
                row = {"task": task, "curriculum": cur, "metric": m, "seeds": n, "diff mean": float(d.mean())}
                row["diff std"] = float(d.std(ddof=1)) if n > 1 else np.nan
                row["ci low"] = row["ci high"] = row["p"] = np.nan
                if n > 1 and row["diff std"] > 0:
                    test = stats.ttest_rel(pair["x"], pair["y"])
                    ci = test.confidence_interval(confidence_level=level)
                    row["ci low"], row["ci high"], row["p"] = float(ci.low), float(ci.high), float(test.pvalue)
                elif n > 1:  # every seed gives the same difference: the interval is that point
                    row["ci low"] = row["ci high"] = row["diff mean"]
                rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def summarise(roots: list[str]) -> pd.DataFrame:
    """:func:`run_summary` of the runs under ``roots``."""
    return run_summary(load_runs(roots))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+")
    args = ap.parse_args()
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(summarise(args.dirs).drop(columns=["run"]).to_string(index=False, float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
