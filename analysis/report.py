"""One command from sweep outputs to the paper's tables and figures, beside the published numbers.

    python -m analysis.report multirun/2026-11-23/10-00-00 [more dirs] --out report/
    python -m analysis.report --wandb my-entity/sec --out report/

writes into ``--out``: ``index.md`` (everything, open it first), and per artifact
``<name>.md`` / ``.tex`` / ``.csv`` (tables), ``<name>_vs_paper.md`` / ``.csv`` (ours beside the
published numbers, with each curriculum's relative gain over random), ``<name>.png`` / ``.pdf``
(figures), plus ``runs.csv`` (one line per run), ``per_run.md`` / ``.csv`` (per run: first and last
pass@1, mean sampled level, wasted rollouts; :mod:`analysis.summary`), ``paired_vs_random.csv``
(each curriculum minus random, paired by seed, with a t interval), ``per_curriculum.md`` /
``.csv`` (the same, mean ± std over seeds) and ``paper_tables.md`` (SEC.md §4 as published);
for a league (runs tagged ``league``, or ``--league``) first the league table, ``league.md`` /
``.csv`` and ``league_figure3.png`` / ``.pdf`` (Figure 3 per curriculum; :mod:`analysis.league`);
when the runs pre-register ``targets`` (league or not), ``compute.md`` / ``.csv`` and
``compute_runs.csv`` (the step, rollouts and seconds to each target; :mod:`analysis.compute`).

Which runs make which artifact: runs carry the ``tag`` of their experiment
(``conf/experiment/``): ``table1`` (Table 1, and Figure 3 from its SEC runs), ``table2``,
``figure1``, ``figure4``. Untagged runs (e.g. ``make sweep``) or runs with another tag go by
content: single-task runs to Table 1 / Figure 3 (and to Figure 1 when a ``reverse`` run is
among them), task-mix runs (``task=puzzles``) to Figure 4. The best-checkpoint rule is in
:mod:`analysis.tables`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis import figures, paper, tables
from analysis.comparison import comparison_section
from analysis.compute import compute_section, targets_of
from analysis.league import league_section
from analysis.load import Runs, load_runs, load_wandb

ARTIFACTS = ("table1", "figure3", "table2", "figure4", "figure1")
#: the sweep that makes each artifact, for the "missing" notes
SWEEPS = {
    "table1": "python -m sec.launch -m experiment=table1 profile=paper",
    "figure3": "python -m sec.launch -m experiment=figure3 profile=paper",
    "table2": "python -m sec.launch -m experiment=table2 profile=paper backend=verl",
    "figure4": "python -m sec.launch -m experiment=figure4 profile=paper",
    "figure1": "python -m sec.launch -m experiment=figure1 profile=paper",
}


@dataclass
class Options:
    """Report settings (the CLI flags)."""

    select_split: str = "id"
    per_split: bool = False
    levels: bool = False
    window: int = 10
    eval_window: int = 3
    paper_model: str | None = None
    figure3_curricula: list[str] | None = None
    #: the league table: None = when a run is tagged ``league``
    league: bool | None = None
    command: str = ""
    sources: list[str] = field(default_factory=list)


def _is_mix(cfg: dict) -> bool:
    return bool((cfg.get("task") or {}).get("components"))


def select_runs(runs: Runs) -> dict[str, list[str]]:
    """Run ids of each artifact (rules: module docstring)."""
    info = runs.train.groupby("run").agg(tag=("tag", "first"), curriculum=("curriculum", "first")).reset_index()
    mix = {r: _is_mix(runs.configs.get(r, {})) for r in info["run"]}
    tagged = {t: info.loc[info["tag"] == t, "run"].tolist() for t in ("table1", "table2", "figure1", "figure4")}
    other = info[~info["tag"].isin(list(tagged))]
    single = other[~other["run"].map(mix).astype(bool)]
    sel = {
        "table1": tagged["table1"] + single["run"].tolist(),
        "table2": tagged["table2"],
        "figure4": tagged["figure4"] + [r for r in other["run"] if mix[r]],
        "figure1": tagged["figure1"],
    }
    if (single["curriculum"] == "reverse").any():
        sel["figure1"] += single.loc[single["curriculum"].isin(["reverse", "random"]), "run"].tolist()
    t1 = info[info["run"].isin(sel["table1"])]
    sel["figure3"] = t1["run"].tolist()
    return sel


def _subset(runs: Runs, ids: list[str]) -> Runs:
    keep = set(ids)
    ev = runs.eval[runs.eval["run"].isin(keep)] if not runs.eval.empty else runs.eval
    return Runs(runs.train[runs.train["run"].isin(keep)], ev, [], {r: runs.configs[r] for r in keep})


def _table_files(out: Path, name: str, table: tables.Table, opts: Options) -> str:
    """Write the table's md/tex/csv and its side-by-side; return the index section body."""
    md = tables.to_markdown(table)
    (out / f"{name}.md").write_text(f"# {table.spec.title}\n\n{md}")
    (out / f"{name}.tex").write_text(tables.to_latex(table))
    (out / f"{name}.csv").write_text(tables.to_csv(table))
    body = [md, f"Files: [{name}.md]({name}.md) · [{name}.tex]({name}.tex) · [{name}.csv]({name}.csv)\n"]
    if table.spec.name in set(paper.paper_results()["source"]):
        sbs = paper.side_by_side(table, paper_model=opts.paper_model)
        sbs_md = paper.side_by_side_markdown(sbs, table.spec)
        (out / f"{name}_vs_paper.md").write_text(f"# {table.spec.title}: ours vs the paper\n\n{sbs_md}")
        sbs.to_csv(out / f"{name}_vs_paper.csv", index=False, float_format="%.6g")
        body += [
            "**Side by side with the paper** (SEC.md §4; gains are relative to random: "
            "(curriculum - random) / random):\n",
            sbs_md,
            f"Files: [{name}_vs_paper.md]({name}_vs_paper.md) · [{name}_vs_paper.csv]({name}_vs_paper.csv)\n",
        ]
    if table.warnings:
        body.append("\n".join(f"> **Warning:** {w}" for w in table.warnings) + "\n")
    return "\n".join(body)


def _figure(out: Path, name: str, fig) -> str:
    figures.save(fig, out / name)
    return f"![{name}]({name}.png)\n\nFiles: [{name}.png]({name}.png) · [{name}.pdf]({name}.pdf)\n"


def _panels(evals: pd.DataFrame, task: str, splits: list[str]) -> list[tuple[str, str]]:
    """(task, split) panels of an accuracy figure: ``task`` when evaluated, else the first task."""
    tasks = tables.sort_values("task", evals["task"])
    t = task if task in tasks else tasks[0]
    return [(t, s) for s in splits if ((evals["task"] == t) & (evals["split"] == s)).any()]


def build_report(runs: Runs, out: str | Path, opts: Options | None = None) -> Path:
    """Write every artifact the runs support into ``out``; returns the path of ``index.md``.

    Raises:
        ValueError: if ``runs`` holds no run.
    """
    opts = opts or Options()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if runs.train.empty:
        raise ValueError("no runs to report (every run dir was skipped or none was found)")
    splits = None if opts.levels else list(tables.MAIN_SPLITS)
    best_all = (
        tables.best_checkpoint(runs.eval, select_split=opts.select_split, per_split=opts.per_split)
        if not runs.eval.empty
        else pd.DataFrame()
    )
    sel = select_runs(runs)
    sections: list[str] = []
    missing: list[str] = []
    if opts.league or (opts.league is None and runs.train["tag"].astype(str).str.startswith("league").any()):
        sections.append(league_section(out, runs, window=opts.window))
    # the runs' pre-registered targets (compute to target, mastery thresholds per level), league or not
    try:
        targets = targets_of(runs)
    except ValueError as e:
        missing.append(f"- compute to target: {e}")
        targets = {}
    if targets:
        sections.append(compute_section(out, runs, targets))

    def best_of(ids: list[str]) -> pd.DataFrame:
        return best_all[best_all["run"].isin(set(ids))] if not best_all.empty else best_all

    specs = {"table1": tables.TABLE1, "table2": tables.TABLE2, "figure4": tables.FIGURE4, "figure1": tables.TABLE1}
    for name in ARTIFACTS:
        ids = sel[name]
        sub = _subset(runs, ids)
        if not ids:
            missing.append(f"- {name}: no runs (sweep: `{SWEEPS[name]}`, or pass its run dirs)")
            continue
        if name in specs:
            b = best_of(ids)
            if b.empty:
                missing.append(f"- {name}: {len(ids)} runs but no eval record")
            else:
                spec = specs[name]
                if name == "figure1":
                    spec = tables.TableSpec("figure1", "Figure 1 runs: reverse vs random", spec.rows, spec.groups)
                table = tables.aggregate(b, spec, splits=splits, configs=sub.configs)
                sections.append(f"## {spec.title}\n\n{_table_files(out, name, table, opts)}")
        if name == "figure3":
            try:
                fig = figures.difficulty_figure(sub.train, window=opts.window, curricula=opts.figure3_curricula)
            except ValueError as e:
                missing.append(f"- figure3: {e}")
                continue
            sections.append(f"## Figure 3: mean sampled difficulty vs step\n\n{_figure(out, 'figure3', fig)}")
        elif name in ("figure4", "figure1") and not sub.eval.empty:
            if name == "figure4":
                panels = _panels(sub.eval, "countdown", ["ood"])
                title = "Figure 4: OOD accuracy vs step, random vs SEC-2D"
            else:
                panels = _panels(sub.eval, "countdown", ["id", "ood"])
                title = "Figure 1: reverse (hard to easy) vs random"
            fig = figures.accuracy_figure(sub.eval, panels, window=opts.eval_window, title=title)
            sections.append(f"## {title}\n\n{_figure(out, f'{name}_curve', fig)}")

    sections.append(comparison_section(out, runs, eval_window=opts.eval_window))
    _write_runs_csv(runs, best_all, out / "runs.csv")
    paper_md = _paper_tables()
    (out / "paper_tables.md").write_text(paper_md)
    rule = (
        "each (task, split) at its own best evaluation step (per-split best)"
        if opts.per_split
        else f"per run, the evaluation step with the best `{opts.select_split}` pass@1 (a mix: mean over its tasks; "
        "ties: the earliest step), reported for every split"
    )
    n_done = int(runs.train.groupby("run")["done"].first().sum())
    n_runs = runs.train["run"].nunique()
    head = [
        "# SEC report: the paper's tables and figures from these runs\n",
        f"Command: `{opts.command}`\n" if opts.command else "",
        "Sources: " + ", ".join(f"`{s}`" for s in opts.sources) + "\n" if opts.sources else "",
        f"Runs: {n_runs} loaded ({n_done} finished, {n_runs - n_done} unfinished), {len(runs.skipped)} skipped. "
        f"Best checkpoint: {rule}. Cells: mean ± std over seeds (n = seeds); best **bold**, second <u>underlined</u> "
        "within a row and model.\n",
    ]
    tail = []
    if missing:
        tail.append("## Not in this report\n\n" + "\n".join(missing) + "\n")
    if runs.skipped or runs.unfinished:
        lines = [f"- skipped `{r}`: {why}" for r, why in runs.skipped]
        for r, s in runs.unfinished:
            if r in runs.failed:
                lines.append(f"- failed `{r}` after step {s}: {runs.failed[r]} (its evaluations so far are used)")
            else:
                lines.append(f"- unfinished `{r}`: last step {s} (its evaluations so far are used)")
        tail.append("## Skipped, failed and unfinished runs\n\n" + "\n".join(lines) + "\n")
    tail.append("One line per run: [runs.csv](runs.csv). The published tables: [paper_tables.md](paper_tables.md).\n")
    index = out / "index.md"
    index.write_text("\n".join([*(h for h in head if h), *sections, *tail]))
    return index


def _write_runs_csv(runs: Runs, best: pd.DataFrame, path: Path) -> None:
    t = runs.train.groupby("run").agg(
        tag=("tag", "first"),
        task=("run_task", "first"),
        model=("model", "first"),
        algorithm=("algorithm", "first"),
        curriculum=("curriculum", "first"),
        seed=("seed", "first"),
        done=("done", "first"),
        last_step=("step", "max"),
    )
    if not best.empty:
        b = best[best["split"].isin(["id", "ood"])]
        wide = b.pivot_table(index="run", columns=["task", "split"], values="pass@1", aggfunc="first")
        wide.columns = [f"{task}/{split} pass@1" for task, split in wide.columns]
        t = t.join(b.groupby("run")["step"].first().rename("best_step")).join(wide)
    t.reset_index().to_csv(path, index=False, float_format="%.6g")


def _paper_tables() -> str:
    parts = ["# Published numbers (SEC.md §4, arXiv:2505.14970)\n"]
    for source in ("table1", "figure4", "table2"):
        t = paper.paper_table(source)
        parts.append(f"## {t.spec.title}\n\n{tables.to_markdown(t)}")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m analysis.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("dirs", nargs="*", help="sweep / run dirs (searched recursively)")
    ap.add_argument("--wandb", action="append", default=[], metavar="ENTITY/PROJECT", help="also read a wandb project")
    ap.add_argument("--out", default="report", help="report folder (default: report/)")
    ap.add_argument("--select-split", default="id", help="split that picks the best checkpoint (default: id)")
    ap.add_argument("--per-split-best", action="store_true", help="each split at its own best step")
    ap.add_argument("--levels", action="store_true", help="also report the per-level splits (level_<k>)")
    ap.add_argument("--window", type=int, default=10, help="Figure 3 moving average, steps (default 10)")
    ap.add_argument("--eval-window", type=int, default=3, help="accuracy curves moving average, evals (default 3)")
    ap.add_argument("--paper-model", default=None, help="paper model our runs are compared with (default: same)")
    ap.add_argument("--figure3-curricula", default=None, help="comma list (default: the sec* curricula)")
    ap.add_argument("--finished-only", action="store_true", help="skip runs without done.json")
    ap.add_argument("--league", action="store_true", help="the league table for any runs (default: tag league)")
    args = ap.parse_args(argv)
    if not args.dirs and not args.wandb:
        ap.error("give run/sweep dirs and/or --wandb ENTITY/PROJECT")
    for d in args.dirs:
        if not Path(d).is_dir():
            ap.error(f"not a directory: {d}")
    if args.window < 1 or args.eval_window < 1:
        ap.error("--window and --eval-window must be >= 1")
    runs = load_runs(args.dirs, finished_only=args.finished_only)
    for w in args.wandb:
        runs = runs + load_wandb(w)
    opts = Options(
        select_split=args.select_split,
        per_split=args.per_split_best,
        levels=args.levels,
        window=args.window,
        eval_window=args.eval_window,
        paper_model=args.paper_model,
        figure3_curricula=args.figure3_curricula.split(",") if args.figure3_curricula else None,
        league=True if args.league else None,
        command="python -m analysis.report " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        sources=[*args.dirs, *(f"wandb:{w}" for w in args.wandb)],
    )
    try:
        index = build_report(runs, args.out, opts)
    except ValueError as e:
        print(f"analysis.report: {e}", file=sys.stderr)
        for r, why in runs.skipped:
            print(f"  skipped {r}: {why}", file=sys.stderr)
        return 1
    print(f"wrote {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
