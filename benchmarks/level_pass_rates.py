"""pass@1 of the untrained model per difficulty level: is a task's ladder of levels right for it?

A curriculum can only matter when the levels span what the model solves (pass@1 near 1) to what
it does not (near 0): SEC's reward, the mean |advantage| of a group, is largest at pass@1 = 0.5
and zero at 0 or 1 (SEC.md §3.2). This composes the run config exactly as ``sec.launch`` does
(any Hydra override), loads the task's test split and the model, samples ``--k`` completions for
the first ``--problems`` test problems of every level with the run's own evaluation code
(:func:`sec.evaluate.evaluate`) and prints one line per level: pass@1 and its standard error
over problems (the binomial error of pass@1 with k samples per problem is at most this).

    python benchmarks/level_pass_rates.py task=arith                 # the README's table
    python benchmarks/level_pass_rates.py task=arith --problems 100 --k 4 eval.temperature=1.0
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def level_pass_rates(overrides: list[str], problems: int, k: int) -> tuple[list[dict], dict]:
    """Per-level pass@1 rows (``group``, ``pass@1``, ``stderr``, ``n_problems``, ``k``, ``kwargs``)
    and the run settings used (model source, temperature, tokens, answer extraction, seconds)."""
    from hydra import compose, initialize_config_dir

    from sec.evaluate import evaluate
    from sec.workspace import Workspace, seed_everything

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=[*overrides, f"eval.max_problems_per_level={problems}", f"eval.k={k}"])
    seed_everything(int(cfg.seed))
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(cfg, tmp)
        ws.setup()
        model, tokenizer = ws.load_model()
        e = cfg.eval
        t0 = time.perf_counter()
        per_problem: dict[str, list[float]] = {}

        def score(completion: str, record: dict) -> float:
            return ws.eval_score(completion, record)

        records = evaluate(
            model,
            tokenizer,
            ws.test_records,
            score=score,
            train_levels=[int(x) for x in cfg.task.train_levels],
            ood_levels=[int(x) for x in cfg.task.ood_levels],
            prompt_format=str(cfg.model.prompt_format),
            k=k,
            temperature=float(e.temperature),
            max_new_tokens=int(e.max_new_tokens),
            batch_size=int(e.batch_size),
            max_batch_tokens=e.get("max_batch_tokens"),
            max_problems_per_level=problems,
            seed=int(cfg.seed),
            step=0,
            per_problem=per_problem,
        )
        seconds = time.perf_counter() - t0
    rows = []
    levels = {f"level_{int(lv)}": dict(kw) for lv, kw in cfg.task.get("levels", {}).items()}
    for r in records:
        values = np.asarray(per_problem.get(r["split"], []), dtype=float)
        err = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
        rows.append(
            {
                "group": r["split"],
                "pass@1": float(r["pass@1"]),
                "stderr": err,
                "n_problems": int(r["n_problems"]),
                "k": k,
                "kwargs": levels.get(r["split"], {}),
            }
        )
    settings = {
        "model_source": ws.model_source,
        "temperature": float(cfg.eval.temperature),
        "max_new_tokens": int(cfg.eval.max_new_tokens),
        "answer_extraction": ws.answer_extraction,
        "seconds": seconds,
    }
    return rows, settings


def _describe(kwargs: dict) -> str:
    if not kwargs:
        return ""
    if "min_terms" in kwargs:  # basic_arithmetic
        digits = kwargs["min_digits"] if kwargs["min_digits"] == kwargs["max_digits"] else "{min_digits}-{max_digits}"
        return f"{kwargs['min_terms']} terms, {digits} digit(s), {' '.join(kwargs['operators'])}"
    return ", ".join(f"{k}={v}" for k, v in kwargs.items())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. task=arith eval.temperature=0.3")
    ap.add_argument("--problems", type=int, default=40, help="test problems per level (default 40)")
    ap.add_argument("--k", type=int, default=4, help="samples per problem (default 4)")
    args = ap.parse_args(argv)
    rows, settings = level_pass_rates(list(args.overrides), args.problems, args.k)
    print(
        f"model {settings['model_source']}, temperature {settings['temperature']:g}, "
        f"max {settings['max_new_tokens']} new tokens, answer = {settings['answer_extraction']}, "
        f"{settings['seconds']:.0f} s\n"
    )
    print("| group | level | problems x k | pass@1 | ± stderr |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['group']} | {_describe(r['kwargs'])} | {r['n_problems']} x {r['k']} | "
            f"{r['pass@1']:.3f} | {r['stderr']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
