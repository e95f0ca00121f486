"""The report's comparison of curricula (``analysis.report``'s "Per curriculum and per run" section):
per curriculum mean ± std over seeds, each curriculum minus random paired by seed with a 95%
interval, one line per run, and what explains them (per-level pass@1 over training, the bandit's Q
values and probabilities per quarter, :mod:`analysis.dynamics`). Numbers come from
:mod:`analysis.summary`; this module renders them and writes their files.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis import dynamics, figures
from analysis.load import Runs
from analysis.summary import curriculum_summary, paired_vs_baseline, run_summary, slope_intervals

#: display names of the compared metrics (analysis.summary's columns)
METRIC_NAMES = {
    "id pass@1 best": "ID pass@1 (best checkpoint)",
    "ood pass@1 best": "OOD pass@1 (best checkpoint)",
    "id pass@1 final": "ID pass@1 (last)",
    "ood pass@1 final": "OOD pass@1 (last)",
    "hardest level pass@1 best": "hardest ID level pass@1 (best checkpoint)",
    "hardest level pass@1 final": "hardest ID level pass@1 (last)",
    "id gain": "ID change",
    "ood gain": "OOD change",
    "sampled level": "mean sampled level",
    "level slope": "sampled level slope (/100 steps)",
    "wasted": "wasted",
    "rollouts per signal group": "rollouts per signal group",
}
ABOUT = (
    "*Best checkpoint*: per run, the evaluation with the best ID pass@1 (ID and OOD from that step). *Last*: the "
    "final evaluation; *first → last* / *change*: from the first evaluation (step 0 with `eval.at_start=true`). "
    "*Wasted*: the share of rollout groups whose rewards all agree (zero advantage, no gradient), averaged over "
    "steps; *rollouts per signal group* = rollouts / groups with reward variance = `num_generations / (1 - "
    "wasted)`. *Slope*: least-squares slope of the mean sampled level against the step, levels per 100 steps. "
    "Per curriculum: mean ± std over seeds.\n"
)


def _f(x: float, fmt: str = ".3f") -> str:
    return "-" if pd.isna(x) else format(x, fmt)


def _pm(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "-"
    return f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}"


def _table(head: list[str], rows: list[list[str]]) -> str:
    return (
        "\n".join(
            ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(r) + " |" for r in rows)]
        )
        + "\n"
    )


def _per_curriculum_md(per_cur: pd.DataFrame) -> str:
    metrics = [m for m in METRIC_NAMES if f"{m} mean" in per_cur]
    rows = [
        [str(r["task"]), str(r["curriculum"]), str(r["seeds"]), *(_pm(r[f"{m} mean"], r[f"{m} std"]) for m in metrics)]
        for _, r in per_cur.iterrows()
    ]
    return _table(["task", "curriculum", "seeds", *(METRIC_NAMES[m] for m in metrics)], rows)


def _paired_md(paired: pd.DataFrame) -> str:
    rows = []
    for _, r in paired.iterrows():
        ci = "-" if pd.isna(r["ci low"]) else f"[{r['ci low']:+.3f}, {r['ci high']:+.3f}]"
        rows.append([
            str(r["task"]), str(r["curriculum"]), METRIC_NAMES.get(r["metric"], r["metric"]), str(r["seeds"]),
            f"{r['diff mean']:+.3f}", ci, _f(r["p"], ".2f"),
        ])  # fmt: skip
    return (
        "\n### Against random, paired by seed\n\nPer seed, the curriculum's value minus random's; mean over seeds, "
        "Student-t 95% interval and two-sided paired t-test p (`analysis.summary.paired_vs_baseline`). An interval "
        "that contains 0 means the difference is not resolved at this number of seeds.\n\n"
        + _table(["task", "curriculum", "metric", "seeds", "minus random", "95% CI", "p"], rows)
    )


def _slopes_md(per_run: pd.DataFrame) -> str:
    """Figure 3 in numbers: each curriculum's sampled-level slope with its 95% interval over seeds."""
    sl = slope_intervals(per_run)
    rows = [
        [str(r["task"]), str(r["curriculum"]), str(r["seeds"]), _f(r["slope"], "+.3f"),
         "-" if pd.isna(r["ci low"]) else f"[{r['ci low']:+.3f}, {r['ci high']:+.3f}]"]
        for _, r in sl.iterrows()
    ]  # fmt: skip
    return (
        "\n### Figure 3 in numbers: does the curriculum climb?\n\nPer run, the least-squares slope of the mean "
        "sampled level against the step (levels per 100 steps); mean over seeds with its one-sample Student-t 95% "
        "interval (`analysis.summary.slope_intervals`). Above 0: the draws move to harder levels during the run.\n\n"
        + _table(["task", "curriculum", "seeds", "slope", "95% CI"], rows)
    )


def _pass_cell(r: pd.Series, split: str) -> str:
    return f"{_f(r[f'{split} pass@1 start'])} → {_f(r[f'{split} pass@1 final'])} ({_f(r[f'{split} pass@1 best'])})"


def _per_run_md(per_run: pd.DataFrame) -> str:
    rows = []
    for _, r in per_run.iterrows():
        rows.append([
            str(r["task"]), str(r["curriculum"]), str(r["seed"]), str(r["steps"]), _pass_cell(r, "id"),
            _pass_cell(r, "ood"), str(r["level by quarter"]), _f(r["level slope"], "+.2f"), _f(r["wasted"]),
            _f(r["rollouts per signal group"], ".1f"), str(r["final Q"]),
        ])  # fmt: skip
    head = [
        "task", "curriculum", "seed", "steps", "ID pass@1 first → last (best)", "OOD pass@1 first → last (best)",
        "sampled level per quarter", "slope", "wasted", "rollouts per signal group", "final Q per arm",
    ]  # fmt: skip
    return _table(head, rows)


def _dynamics_md(out: Path, runs: Runs, window: int) -> str:
    """Per-level pass@1 over training (table + figure) and the bandit's state per quarter."""
    parts = []
    levels = dynamics.level_pass_rates(runs)
    if not levels.empty and levels["split"].astype(str).str.startswith("level_").any():
        levels.to_csv(out / "level_pass_rates.csv", index=False, float_format="%.6g")
        fig = dynamics.level_curves(runs, window=window)
        figures.save(fig, out / "level_curves")
        parts.append(
            "### pass@1 per level over training\n\nMean over seeds at every evaluation step.\n\n"
            + dynamics.level_pass_markdown(levels)
            + "\n![level_curves](level_curves.png)\n\nFiles: [level_pass_rates.csv](level_pass_rates.csv) · "
            "[level_curves.png](level_curves.png) · [level_curves.pdf](level_curves.pdf)\n"
        )
    state = dynamics.bandit_state(runs)
    if not state.empty:
        state.to_csv(out / "bandit_state.csv", index=False, float_format="%.6g")
        parts.append(
            "### The curriculum's state over training\n\nPer arm, the mean Q value (SEC's; `-` for curricula "
            "without one) and sampling probability in each quarter of the steps, averaged over seeds.\n\n"
            + dynamics.bandit_markdown(state)
            + "\nFile: [bandit_state.csv](bandit_state.csv)\n"
        )
    return "\n".join(parts)


def comparison_section(out: Path, runs: Runs, *, eval_window: int = 1) -> str:
    """Write ``per_run.*``, ``per_curriculum.*``, ``paired_vs_random.csv`` and the dynamics files into
    ``out``; return the report section (markdown)."""
    per_run = run_summary(runs).sort_values(["task", "curriculum", "seed"], key=lambda c: c.astype(str))
    per_cur = curriculum_summary(per_run)
    per_run.drop(columns=["run"]).to_csv(out / "per_run.csv", index=False, float_format="%.6g")
    per_cur.to_csv(out / "per_curriculum.csv", index=False, float_format="%.6g")
    cur_md, run_md = _per_curriculum_md(per_cur) + _slopes_md(per_run), _per_run_md(per_run)
    paired = paired_vs_baseline(per_run)
    paired_md = ""
    if not paired.empty:
        paired.to_csv(out / "paired_vs_random.csv", index=False, float_format="%.6g")
        paired_md = _paired_md(paired)
    (out / "per_run.md").write_text(f"# Per run\n\n{ABOUT}\n{run_md}")
    (out / "per_curriculum.md").write_text(f"# Per curriculum\n\n{ABOUT}\n{cur_md}{paired_md}")
    dyn = _dynamics_md(out, runs, eval_window)
    return (
        f"## Per curriculum and per run\n\n{ABOUT}\n{cur_md}{paired_md}\n{run_md}\n"
        + (f"{dyn}\n" if dyn else "")
        + "Files: [per_curriculum.md](per_curriculum.md) · [per_curriculum.csv](per_curriculum.csv) · "
        "[per_run.md](per_run.md) · [per_run.csv](per_run.csv)"
        + (" · [paired_vs_random.csv](paired_vs_random.csv)" if paired_md else "")
        + "\n"
    )
