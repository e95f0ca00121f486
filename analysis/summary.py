"""Print one line per run: final ID/OOD pass@1, mean sampled level, share of zero-variance
(wasted) groups, mean reward and the final SEC values per arm.

    python -m analysis.summary multirun/2026-11-23/10-00-00 [more dirs]
"""

from __future__ import annotations

import argparse

import pandas as pd

from analysis.load import load_runs


def summarise(roots: list[str]) -> pd.DataFrame:
    """One row per run (see module doc)."""
    runs = load_runs(roots)
    rows = []
    for run, t in runs.train.groupby("run"):
        t = t.sort_values("step")
        e = runs.eval[runs.eval["run"] == run] if not runs.eval.empty else runs.eval
        last = e[e["step"] == e["step"].max()] if not e.empty else e
        split = dict(zip(last.get("split", []), last.get("pass@1", []), strict=False))
        q_cols = [c for c in t.columns if c.endswith("/q") and t[c].notna().any()]
        rows.append(
            {
                "task": t["task"].iloc[0],
                "curriculum": t["curriculum"].iloc[0],
                "seed": t["seed"].iloc[0],
                "steps": int(t["step"].max()),
                "id pass@1": split.get("id"),
                "ood pass@1": split.get("ood"),
                "sampled level": t["curriculum/sampled_level_mean"].mean(),
                "zero-var groups": t["zero_variance_frac"].mean(),
                "reward": t["reward_mean"].mean(),
                "final Q": " ".join(f"{v:.2f}" for v in t[q_cols].iloc[-1]) if q_cols else "-",
                "done": bool(t["done"].iloc[0]),
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+")
    args = ap.parse_args()
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summarise(args.dirs).to_string(index=False, float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
