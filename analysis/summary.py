"""Per run and per curriculum: pass@1 at the start, the end and the best checkpoint of training,
where the curriculum sampled (mean level, its slope over training, the level per quarter of the run)
and the share of wasted rollouts.

A *wasted* rollout group is one whose rewards all agree (``zero_variance_frac`` of a train
record: TRL's ``frac_reward_zero_std``, verl's equivalent). Its advantages are all zero, so
it adds nothing to the policy gradient (SEC.md §3.2: the reason SEC prefers categories with a
large mean |advantage|). *Rollouts per signal group* = rollouts generated / groups with nonzero
reward variance: what one group that carries a gradient cost; from the budget fields
(``budget/rollouts / budget/signal_groups``, sec/budget.py, dropped groups of dynamic sampling
included) or, for runs that predate them, ``num_generations / (1 - wasted)``. The budget columns
(rollouts, completion tokens, training seconds, groups dropped, steps at the dynamic-sampling cap)
are the run's totals; with ``targets`` in the runs' config, :mod:`analysis.compute` adds the
rollouts each run spent to reach them.

    python -m analysis.summary multirun/2026-11-23/10-00-00 [more dirs]    # one line per run
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import pandas as pd
from scipy import stats

from analysis.compute import targets_of, to_target
from analysis.labels import sort_values
from analysis.load import Runs, load_runs
from analysis.tables import best_checkpoint

__all__ = [
    "PAIRED_METRICS",
    "curriculum_summary",
    "hardest_train_level",
    "level_slope",
    "paired_vs_baseline",
    "run_summary",
    "slope_intervals",
    "summarise",
]

_SPLITS = ("id", "ood")
#: run_summary's name of the hardest training level's split (``level_<max train_levels>``)
HARD = "hardest level"
DIFFICULTY = "curriculum/sampled_level_mean"
#: a spread of per-seed differences below this is rounding noise (e.g. 50 - 50 in floating point): no test
_NO_SPREAD = 1e-9
#: the sampled level is reported per this many equal parts of a run's steps ("level by quarter")
PHASES = 4


def level_slope(steps: np.ndarray, levels: np.ndarray) -> float:
    """Least-squares slope of the sampled level against the step, in levels per 100 steps
    (``numpy.polyfit`` of degree 1); NaN with fewer than 2 distinct steps."""
    ok = ~np.isnan(levels)
    steps, levels = np.asarray(steps, dtype=float)[ok], np.asarray(levels, dtype=float)[ok]
    if len(np.unique(steps)) < 2:
        return float("nan")
    return float(np.polyfit(steps, levels, 1)[0] * 100.0)


def _phases(steps: np.ndarray, levels: np.ndarray, n: int = PHASES) -> list[float]:
    """Mean sampled level in each of ``n`` equal parts of the run's steps (NaN for an empty part)."""
    if len(steps) == 0:
        return [float("nan")] * n
    parts = np.array_split(np.argsort(steps, kind="stable"), n)
    return [float(np.nanmean(levels[p])) if len(p) else float("nan") for p in parts]


def hardest_train_level(cfg: dict) -> str | None:
    """The eval split of the hardest training level of a run config, ``level_<max(task.train_levels)>``
    (the splits of sec/tasks/data.py); None for a task without integer training levels (a mix)."""
    levels = (cfg.get("task") or {}).get("train_levels") or []
    ints = [x for x in levels if isinstance(x, int)]
    return f"level_{max(ints)}" if ints and len(ints) == len(levels) else None


def _generations(cfg: dict) -> float:
    g = (cfg.get("algorithm") or {}).get("num_generations")
    return float(g) if isinstance(g, (int, float)) else float("nan")


def _budget(t: pd.DataFrame) -> dict[str, float]:
    """A run's budget totals (sec/budget.py) from its train records, sorted by step; NaN without them."""

    def last(key: str) -> float:
        return float(t[key].dropna().iloc[-1]) if key in t and t[key].notna().any() else np.nan

    def total(key: str) -> float:
        return float(t[key].sum()) if key in t and t[key].notna().any() else np.nan

    return {
        "rollouts": last("budget/rollouts"),
        "completion tokens": last("budget/completion_tokens"),
        "train seconds": last("budget/train_s"),
        "groups dropped": total("budget/groups_dropped"),
        "cap hits": total("budget/cap_hit"),
    }


def run_summary(runs: Runs) -> pd.DataFrame:
    """One row per run (single-task runs; a mix reports the mean over its tasks).

    Columns: ``run``, ``task``, ``curriculum``, ``seed``, ``steps`` (last train step),
    ``<split> pass@1 start`` (the first evaluation, step 0 with ``eval.at_start``),
    ``<split> pass@1 final`` (the last one) and ``<split> pass@1 best`` (at the best checkpoint:
    the evaluation step with the best ID pass@1, :func:`analysis.tables.best_checkpoint`) for
    ``id`` / ``ood`` and ``hardest level`` (the hardest training level's split,
    :func:`hardest_train_level`; NaN when the runs do not evaluate it per level), ``sampled level``
    (mean of ``curriculum/sampled_level_mean`` over steps),
    ``level slope`` (:func:`level_slope`, levels per 100 steps), ``level by quarter`` (the mean
    sampled level in each quarter of the steps, ``"a / b / c / d"``), ``wasted`` (mean
    ``zero_variance_frac`` over steps, in [0, 1]), ``rollouts``, ``completion tokens``, ``train
    seconds``, ``groups dropped``, ``cap hits`` (the budget's totals, module doc; NaN for runs without
    budget fields), ``rollouts per signal group`` (module doc; inf when every group was wasted), ``reward`` (mean
    training reward), ``final Q`` (the SEC values per arm at the last step) and ``done``.
    """
    best = best_checkpoint(runs.eval) if not runs.eval.empty else pd.DataFrame()
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
        hard = hardest_train_level(runs.configs.get(run, {}))
        for name, split in (*((s, s) for s in _SPLITS), (HARD, hard)):
            s = e[e["split"] == split] if not e.empty else e
            by_step = s.groupby("step")["pass@1"].mean() if not s.empty else pd.Series(dtype=float)
            row[f"{name} pass@1 start"] = float(by_step.iloc[0]) if len(by_step) else np.nan
            row[f"{name} pass@1 final"] = float(by_step.iloc[-1]) if len(by_step) else np.nan
            b = best[(best["run"] == run) & (best["split"] == split)] if not best.empty else best
            row[f"{name} pass@1 best"] = float(b["pass@1"].mean()) if len(b) else np.nan
        level = t[DIFFICULTY].to_numpy(dtype=float) if DIFFICULTY in t else np.full(len(t), np.nan)
        steps = t["step"].to_numpy(dtype=float)
        row["sampled level"] = float(np.nanmean(level)) if not np.isnan(level).all() else np.nan
        row["level slope"] = level_slope(steps, level)
        row["level by quarter"] = " / ".join(f"{x:.2f}" for x in _phases(steps, level))
        wasted = t.get("zero_variance_frac")
        row["wasted"] = float(wasted.mean()) if wasted is not None else np.nan
        row.update(_budget(t))
        with np.errstate(divide="ignore"):
            if not np.isnan(row["rollouts"]) and "budget/signal_groups" in t:
                row["rollouts per signal group"] = float(np.divide(row["rollouts"], t["budget/signal_groups"].iloc[-1]))
            else:
                row["rollouts per signal group"] = float(
                    np.divide(_generations(runs.configs.get(run, {})), 1.0 - row["wasted"])
                )
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
        *(f"{s} pass@1 best" for s in _SPLITS),
        f"{HARD} pass@1 final",
        f"{HARD} pass@1 best",
        *(f"{s} gain" for s in _SPLITS),
        "sampled level",
        "level slope",
        "wasted",
        "rollouts per signal group",
        "rollouts",
        "train seconds",
        "reward",
    ]
    cols = [c for c in cols if c in df]
    g = df.groupby(["task", "curriculum"], sort=False)
    out = g[cols].agg(["mean", "std"])
    out.columns = [f"{c} {stat}" for c, stat in out.columns]
    out.insert(0, "seeds", g.size())
    return out.reset_index()


#: what :func:`paired_vs_baseline` compares by default (those a frame lacks are left out)
PAIRED_METRICS = (
    "id pass@1 best",
    "ood pass@1 best",
    "id pass@1 final",
    "ood pass@1 final",
    f"{HARD} pass@1 best",
    f"{HARD} pass@1 final",
    "wasted",
    "rollouts per signal group",
    "level slope",
)


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
    baseline has no runs. Several runs of one (curriculum, seed) (a sweep over another setting) enter
    as their mean. Units are those of the metric (pass@1 and the wasted share in [0, 1],
    rollouts, levels per 100 steps); a metric the frame lacks is left out, a seed with an infinite or
    missing value of a metric is left out of that metric's pairs.
    """
    cols = ["task", "curriculum", "metric", "seeds", "diff mean", "diff std", "ci low", "ci high", "p"]
    rows = []
    for task, t in per_run.groupby("task", sort=False):
        # several runs of one (curriculum, seed), e.g. a sweep over another setting: their mean
        t = t.groupby(["curriculum", "seed"], sort=False)[[m for m in metrics if m in t]].mean().reset_index()
        base = t[t["curriculum"] == baseline].set_index("seed")
        if base.empty:
            continue
        for cur, c in t[t["curriculum"] != baseline].groupby("curriculum", sort=False):
            c = c.set_index("seed")
            for m in (m for m in metrics if m in per_run):
                pair = pd.concat([c[m].rename("x"), base[m].rename("y")], axis=1, join="inner")
                pair = pair.replace([np.inf, -np.inf], np.nan).dropna()
                d = (pair["x"] - pair["y"]).to_numpy(dtype=float)
                n = len(d)
                if n == 0:
                    continue
                row = {"task": task, "curriculum": cur, "metric": m, "seeds": n, "diff mean": float(d.mean())}
                row["diff std"] = float(d.std(ddof=1)) if n > 1 else np.nan
                row["ci low"] = row["ci high"] = row["p"] = np.nan
                if n > 1 and row["diff std"] > _NO_SPREAD:
                    test = stats.ttest_rel(pair["x"], pair["y"])
                    ci = test.confidence_interval(confidence_level=level)
                    row["ci low"], row["ci high"], row["p"] = float(ci.low), float(ci.high), float(test.pvalue)
                elif n > 1:  # every seed gives the same difference (to rounding): the interval is that point
                    row["ci low"] = row["ci high"] = row["diff mean"]
                rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def slope_intervals(per_run: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Figure 3 in one number per curriculum: the mean over seeds of each run's sampled-level slope
    (:func:`level_slope`, levels per 100 steps) with its one-sample Student-t interval at ``level``
    (mean ± t_{(1+level)/2, n-1} · std / sqrt(n), ``scipy.stats.ttest_1samp``). Rows per (task, curriculum):
    ``seeds``, ``slope``, ``ci low``, ``ci high`` (NaN for one seed; the point itself without spread).
    An interval above 0: the curriculum's draws move to harder levels during the run (SEC.md §4, Figure 3)."""
    rows = []
    for (task, cur), r in per_run.groupby(["task", "curriculum"], sort=False):
        x = r["level slope"].replace([np.inf, -np.inf], np.nan).dropna().to_numpy(dtype=float)
        row = {"task": task, "curriculum": cur, "seeds": len(x), "slope": float(x.mean()) if len(x) else np.nan}
        row["ci low"] = row["ci high"] = np.nan
        if len(x) > 1 and x.std(ddof=1) > _NO_SPREAD:
            ci = stats.ttest_1samp(x, 0.0).confidence_interval(confidence_level=level)
            row["ci low"], row["ci high"] = float(ci.low), float(ci.high)
        elif len(x) > 1:  # every seed the same slope (to rounding): the interval is that point
            row["ci low"] = row["ci high"] = row["slope"]
        rows.append(row)
    return pd.DataFrame(rows, columns=["task", "curriculum", "seeds", "slope", "ci low", "ci high"])


def summarise(roots: list[str]) -> pd.DataFrame:
    """:func:`run_summary` of the runs under ``roots``."""
    return run_summary(load_runs(roots))


def _f(x: float, fmt: str = ".3f") -> str:
    return "-" if pd.isna(x) else format(x, fmt)


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


def _target_tables(runs: Runs, task: str, order: dict[str, int]) -> list[str]:
    """The rollouts to each pre-registered target per curriculum (analysis/compute.py), if any."""
    try:
        targets = targets_of(runs)
    except ValueError as e:
        return [f"{task}: no compute-to-target table: {e}"]
    per = to_target(runs, targets) if targets else pd.DataFrame()
    if per.empty:
        return []
    per = per[per["task"] == task]
    head = ["curriculum", *(f"{s} >= {v:g}: reached, step, rollouts" for s, v in targets.items())]
    rows = []
    for c in sorted(per["curriculum"].unique(), key=lambda c: order.get(c, len(order))):
        cells = [c]
        for split in targets:
            r = per[(per["curriculum"] == c) & (per["split"] == split)]
            hit = r[r["reached"]]
            cells.append(f"{len(hit)}/{len(r)}, {_f(hit['step'].mean(), '.0f')}, {_f(hit['rollouts'].mean(), '.0f')}")
        rows.append(cells)
    return [f"{task}: the step and rollouts at which a run first reached each pre-registered target (mean over "
            "the runs that reached it; the others are censored)\n"
            + _text_table(head, rows)]  # fmt: skip


def _slope_cell(r: pd.Series) -> str:
    ci = "" if pd.isna(r["ci low"]) else f" [{r['ci low']:+.2f}, {r['ci high']:+.2f}]"
    return _f(r["slope"], "+.2f") + ci


def overview(runs: Runs) -> str:
    """What a sweep's curricula did, as plain text for a terminal (``make sweep`` prints it): per
    task and curriculum (mean over its seeds), the sampled level in each quarter of training and
    its slope (Figure 3 in numbers), the wasted share and rollouts per signal group, and ID / OOD
    pass@1 first -> last (best checkpoint); then the runs that were skipped or failed, with why."""
    per_run = run_summary(runs)
    out = []
    for task, t in per_run.groupby("task", sort=False):
        order = {c: i for i, c in enumerate(sort_values("curriculum", t["curriculum"]))}
        t = t.sort_values("curriculum", key=lambda c: c.map(order), kind="stable")
        g = t.groupby("curriculum", sort=False)
        phases = {
            c: np.nanmean([[float(x) for x in q.split(" / ")] for q in r["level by quarter"]], axis=0) for c, r in g
        }
        steps = int(t["steps"].max())
        bounds = [round(steps * i / PHASES) for i in range(PHASES + 1)]
        head = [
            "curriculum",
            "runs",
            *(f"steps {a + 1}-{b}" for a, b in itertools.pairwise(bounds)),
            "slope",
        ]
        slopes = slope_intervals(t).set_index("curriculum")
        rows = [[c, str(len(r)), *(_f(x, ".2f") for x in phases[c]), _slope_cell(slopes.loc[c])] for c, r in g]
        out.append(
            f"{task}: mean sampled level per quarter of training (slope: levels per 100 steps, "
            "[95% CI over seeds])\n" + _text_table(head, rows)
        )
        head = ["curriculum", "wasted", "rollouts/signal group", "rollouts", "ID pass@1 first -> last (best)"]
        head.append("OOD pass@1 first -> last (best)")
        names = list(_SPLITS)
        if t[f"{HARD} pass@1 final"].notna().any():
            hard = hardest_train_level(runs.configs.get(t["run"].iloc[0], {}))
            head.append(f"{hard} (hardest ID) first -> last (best)")
            names.append(HARD)
        rows = []
        for c, r in g:
            cells = [c, _f(r["wasted"].mean()), _f(r["rollouts per signal group"].mean(), ".1f")]
            cells.append(_f(r["rollouts"].mean(), ".0f"))
            for split in names:
                m = r[[f"{split} pass@1 start", f"{split} pass@1 final", f"{split} pass@1 best"]].mean()
                cells.append(f"{_f(m.iloc[0])} -> {_f(m.iloc[1])} ({_f(m.iloc[2])})")
            rows.append(cells)
        out.append(
            f"{task}: wasted = share of rollout groups whose rewards all agree (no gradient)\n"
            + _text_table(head, rows)
        )
        out += _target_tables(runs, task, order)
    notes = [f"skipped {r}: {why}" for r, why in runs.skipped]
    notes += [f"failed {r}: {err}" for r, err in runs.failed.items()]
    return "\n\n".join(out + (["\n".join(notes)] if notes else [])) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+")
    args = ap.parse_args(argv)
    runs = load_runs(args.dirs)
    if runs.train.empty:
        print("analysis.summary: no run with a train record under " + " ".join(args.dirs))
        for r, why in runs.skipped:
            print(f"  skipped {r}: {why}")
        return 1
    print(overview(runs))
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        table = run_summary(runs).drop(columns=["run"])
        print("One line per run:\n" + table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
