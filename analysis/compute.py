"""Compute to a target (issue 26, docs/league.md): what a run spent until its pass@1 first reached a
pre-registered target, and each curriculum against random, paired by seed.

*Spent* is read from the train records' budget (sec/budget.py): ``budget/rollouts`` (rollouts
generated, dropped groups included: TRL and verl count the same way) and ``budget/train_s`` (wall
seconds of the training steps, evaluations excluded: TRL measures its step from log to log in the
trainer's process, verl reports its own ``timing_s/step``). A run *reaches* a target at the first
evaluation whose pass@1 on the split is >= the target; it spent what its train records say at that
step (0 at step 0). A run that never reaches it is *censored* at its last step: it is kept and shown
as such, never dropped.

Targets come from the run config, ``targets`` (split -> pass@1, e.g. ``{id: 0.70, level_3: 0.22}``),
fixed in a committed experiment config before the comparison runs (docs/league.md, pre-registration).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from analysis.load import Runs

__all__ = ["compute_section", "equal_rollouts", "ratio_to_baseline", "targets_of", "to_target"]

ROLLOUTS, SECONDS = "budget/rollouts", "budget/train_s"


def targets_of(runs: Runs) -> dict[str, float]:
    """The ``targets`` of the runs' configs (split -> pass@1).

    Raises:
        ValueError: runs pre-registered different targets (they are not one comparison).
    """
    found = {
        tuple(sorted((str(k), float(v)) for k, v in (c.get("targets") or {}).items())) for c in runs.configs.values()
    }
    found.discard(())
    if len(found) > 1:
        raise ValueError(f"the runs name different targets: {sorted(found)}")
    return dict(found.pop()) if found else {}


def to_target(runs: Runs, targets: Mapping[str, float]) -> pd.DataFrame:
    """One row per (run, split of ``targets``): ``run``, ``task``, ``curriculum``, ``seed``,
    ``split``, ``target``, ``reached`` (bool), ``step`` (the first evaluation at or above the target;
    the last train step when censored), ``rollouts`` and ``seconds`` spent by then (module doc),
    ``final pass@1`` and ``total rollouts`` of the run. Runs without budget fields get NaN spend."""
    rows = []
    if runs.train.empty or runs.eval.empty:
        return pd.DataFrame(rows)
    for run, t in runs.train.groupby("run", sort=False):
        t = t.sort_values("step")
        spend = t.set_index("step")
        e = runs.eval[runs.eval["run"] == run]
        last = int(t["step"].max())
        for split, target in targets.items():
            by_step = e[e["split"] == split].groupby("step")["pass@1"].mean().sort_index()
            hit = by_step[by_step >= float(target)]
            reached = len(hit) > 0
            step = int(hit.index[0]) if reached else last
            row = {
                "run": run,
                "task": t["task"].iloc[0],
                "curriculum": t["curriculum"].iloc[0],
                "seed": t["seed"].iloc[0],
                "split": split,
                "target": float(target),
                "reached": reached,
                "step": step,
                "final pass@1": float(by_step.iloc[-1]) if len(by_step) else np.nan,
                "total rollouts": float(spend[ROLLOUTS].iloc[-1]) if ROLLOUTS in spend else np.nan,
            }
            for col, key in (("rollouts", ROLLOUTS), ("seconds", SECONDS)):
                if key not in spend:
                    row[col] = np.nan
                elif step == 0:
                    row[col] = 0.0
                else:
                    row[col] = float(spend[key].loc[:step].dropna().iloc[-1]) if step in spend.index else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def ratio_to_baseline(per_run: pd.DataFrame, baseline: str = "random", level: float = 0.95) -> pd.DataFrame:
    """Each curriculum's spend to the target over the baseline's, paired by seed.

    Rows per (task, curriculum, split, measure in ``rollouts`` / ``seconds``): ``seeds`` (pairs where
    both reached the target), ``ratio`` (the geometric mean of the per-seed ratios,
    ``exp(mean(log x/y))``), ``ci low`` / ``ci high`` (the Student-t interval at ``level`` of the mean
    log-ratio, exponentiated; NaN for fewer than 2 pairs), ``censored`` (seeds where this curriculum
    did not reach it) and ``baseline censored`` (seeds where the baseline did not). A ratio below 1:
    less spent than the baseline. Pairs with a zero spend (reached at step 0) have no ratio and are
    left out of ``seeds``.
    """
    cols = ["task", "curriculum", "split", "measure", "seeds", "ratio", "ci low", "ci high", "censored",
            "baseline censored"]  # fmt: skip
    if per_run.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (task, split), t in per_run.groupby(["task", "split"], sort=False):
        base = t[t["curriculum"] == baseline].set_index("seed")
        if base.empty:
            continue
        for cur, c in t[t["curriculum"] != baseline].groupby("curriculum", sort=False):
            c = c.set_index("seed")
            both = c.join(base, how="inner", lsuffix="", rsuffix=" base")
            for measure in ("rollouts", "seconds"):
                ok = both[both["reached"] & both["reached base"]]
                x, y = ok[measure].to_numpy(float), ok[f"{measure} base"].to_numpy(float)
                keep = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
                logs = np.log(x[keep] / y[keep])
                row = {"task": task, "curriculum": cur, "split": split, "measure": measure, "seeds": int(keep.sum())}
                row["ratio"] = float(np.exp(logs.mean())) if logs.size else np.nan
                row["ci low"] = row["ci high"] = np.nan
                if logs.size > 1:
                    sd = logs.std(ddof=1)
                    half = stats.t.ppf((1 + level) / 2, logs.size - 1) * sd / np.sqrt(logs.size)
                    row["ci low"], row["ci high"] = float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half))
                row["censored"] = int((~both["reached"]).sum())
                row["baseline censored"] = int((~both["reached base"]).sum())
                rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def equal_rollouts(runs: Runs, split: str = "id") -> pd.DataFrame:
    """pass@1 on ``split`` at equal rollouts: per (task, seed) the budget is the fewest total
    rollouts among that seed's runs, and each run reports its last evaluation at or below it.
    Rows: ``run``, ``task``, ``curriculum``, ``seed``, ``budget`` (rollouts), ``step``, ``pass@1``."""
    rows = []
    if runs.train.empty or runs.eval.empty or ROLLOUTS not in runs.train:
        return pd.DataFrame(rows)
    last = runs.train.sort_values("step").groupby("run").tail(1).set_index("run")
    for (task, seed), runs_of_seed in last.groupby(["task", "seed"]):
        budget = float(runs_of_seed[ROLLOUTS].min())
        for run in runs_of_seed.index:
            t = runs.train[runs.train["run"] == run].set_index("step")[ROLLOUTS].sort_index()
            e = runs.eval[(runs.eval["run"] == run) & (runs.eval["split"] == split)]
            by_step = e.groupby("step")["pass@1"].mean().sort_index()
            spent = pd.Series([0.0 if s == 0 else t.get(s, np.nan) for s in by_step.index], index=by_step.index)
            within = by_step[spent <= budget]
            if len(within):
                rows.append({"run": run, "task": task, "curriculum": runs_of_seed.loc[run, "curriculum"],
                             "seed": seed, "budget": budget, "step": int(within.index[-1]),
                             "pass@1": float(within.iloc[-1])})  # fmt: skip
    return pd.DataFrame(rows)


def _num(x: float, fmt: str) -> str:
    return "–" if pd.isna(x) else format(x, fmt)


def compute_markdown(per_run: pd.DataFrame, ratios: pd.DataFrame, equal: pd.DataFrame, baseline: str = "random") -> str:
    """The compute-to-target table as markdown: per (task, split, curriculum) the runs that reached
    the target, the mean step, rollouts and seconds of those that did, each curriculum's ratio to the baseline
    with its 95% interval (rollouts; seconds), and ID pass@1 at equal rollouts (mean over seeds)."""
    from analysis.labels import sort_values

    head = ["curriculum", "reached", "step", "rollouts to target", "seconds to target",
            f"rollouts / {baseline} [95% CI]", f"seconds / {baseline} [95% CI]",
            "ID pass@1 at equal rollouts"]  # fmt: skip
    out = []
    r_idx = ratios.set_index(["task", "split", "curriculum", "measure"]) if not ratios.empty else ratios
    for (task, split), t in per_run.groupby(["task", "split"], sort=False):
        target = t["target"].iloc[0]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for cur in sort_values("curriculum", t["curriculum"].unique()):
            c = t[t["curriculum"] == cur]
            hit = c[c["reached"]]
            cells = [
                cur,
                f"{len(hit)}/{len(c)}",
                _num(hit["step"].mean(), ".0f"),
                _num(hit["rollouts"].mean(), ".0f"),
                _num(hit["seconds"].mean(), ".0f"),
            ]
            for measure in ("rollouts", "seconds"):
                key = (task, split, cur, measure)
                if cur == baseline or r_idx.empty or key not in r_idx.index:
                    cells.append("–")
                    continue
                r = r_idx.loc[key]
                cells.append(f"{_num(r['ratio'], '.2f')} [{_num(r['ci low'], '.2f')}, {_num(r['ci high'], '.2f')}] "
                             f"(n={int(r['seeds'])})")  # fmt: skip
            e = equal[(equal["task"] == task) & (equal["curriculum"] == cur)] if not equal.empty else equal
            cells.append(_num(e["pass@1"].mean(), ".3f") if len(e) else "–")
            lines.append("| " + " | ".join(cells) + " |")
        out.append(f"**{task}, {split} pass@1 >= {target:g}**\n\n" + "\n".join(lines) + "\n")
    return "\n".join(out)


ABOUT = (
    "Rollouts and wall-clock seconds each run spent until its pass@1 first reached a target fixed in the "
    "experiment config before the runs (`targets`), read from the train records' budget "
    "(`budget/rollouts`: every rollout generated, groups dropped by dynamic sampling included; "
    "`budget/train_s`: the training steps' wall time, evaluations excluded). *reached*: runs that reached it "
    "(the others are censored at their last step and left out of the means and ratios, not dropped from the "
    "count). *ratio*: per seed, the curriculum's spend over the baseline's, geometric mean over the seeds where "
    "both reached it, with the Student-t 95% interval of the mean log-ratio. *At equal rollouts*: per seed, every "
    "run's last evaluation within the smallest total budget among that seed's runs (analysis/compute.py).\n"
)


def compute_section(out, runs: Runs, targets: Mapping[str, float], baseline: str = "random") -> str:
    """Write ``compute.csv`` / ``compute.md`` into ``out`` and return the report section (markdown)."""
    per_run = to_target(runs, targets)
    ratios = ratio_to_baseline(per_run, baseline=baseline)
    equal = equal_rollouts(runs, "id")
    per_run.to_csv(out / "compute_runs.csv", index=False, float_format="%.6g")
    ratios.to_csv(out / "compute.csv", index=False, float_format="%.6g")
    md = compute_markdown(per_run, ratios, equal, baseline=baseline)
    (out / "compute.md").write_text(f"# Compute to target\n\n{ABOUT}\n{md}")
    return f"## Compute to target\n\n{ABOUT}\n{md}\nFiles: [compute.md](compute.md) · [compute.csv](compute.csv)\n"
