"""The regime probe (issue 25, docs/testbed.md "Toward a regime where levels are mastered"): is there a
task + pre-training + RL setting in which RL, within minutes on a CPU, masters a level and so
makes the next one learnable? Per candidate it measures, for every level of the task:

* pass@1 and the zero-variance share before RL (``--k`` samples of the first ``--problems`` test
  problems at temperature 1.0, the run's scorer; zero-var = share of problems whose k samples are
  all right or all wrong, i.e. GRPO groups without signal);
* the same after ``--rl-steps`` real GRPO steps (``python -m sec.launch``, the testbed's settings
  with the candidate's overrides) on each single training level (``task.train_levels=[k]``);
* the run's median wall seconds per step.

Candidates are named presets (``CANDIDATES``) or ``name=override;override;...`` on the command line;
the pre-trained model of a candidate is built (and cached) as ``model=testbed_lm`` with its
``model.*`` overrides, so the one chosen can be committed as a model config unchanged.

    python benchmarks/regime_probe.py --candidates rev_1000_lr3e-4            # one preset
    python benchmarks/regime_probe.py --candidates bare_2400 bare_800_lr3e-4 --rl-steps 100 --problems 200
    python benchmarks/regime_probe.py --candidates "mine=task=arith_rev;model.pretrain.steps=800"

Prints one table per candidate (rows: before RL, then after RL on level k; columns: levels) and a
summary line; ``--out FILE`` also writes the rows as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from testbed_probe import probe_level, test_problems

#: name -> overrides: ``task=...``, ``model.<key>=...`` (the pre-trained model) and run overrides
#: (``train.*``, ``algorithm.*``). Shared by every candidate: ``experiment=testbed profile=testbed``.
CANDIDATES: dict[str, list[str]] = {
    # the current testbed (arith_bare, 2400 pre-training steps) at its own RL settings: the baseline
    "bare_2400": ["task=arith_bare"],
    # the current testbed at 10x its learning rate
    "bare_2400_lr3e-4": ["task=arith_bare", "train.learning_rate=3e-4"],
    # a less pre-trained point of the current testbed's dial, at 10x the learning rate
    "bare_800_lr3e-4": ["task=arith_bare", "model.pretrain.steps=800", "train.learning_rate=3e-4"],
    "bare_800_lr1e-4": ["task=arith_bare", "model.pretrain.steps=800", "train.learning_rate=1e-4"],
    # the same dial point with level 3 given more of the pre-training (30 %): level 3 starting above 0
    "bare_800_l3mix_lr1e-4": ["task=arith_bare", "model.pretrain.steps=800",
                              "model.pretrain.mix={1: 0.3, 2: 0.3, 3: 0.3, 4: 0.1}", "train.learning_rate=1e-4"],
    # ... and twice the pre-training: level 3 above 0 while levels 1-2 are not solved yet?
    "bare_1600_l3mix_lr1e-4": ["task=arith_bare", "model.pretrain.steps=1600",
                               "model.pretrain.mix={1: 0.3, 2: 0.3, 3: 0.3, 4: 0.1}", "train.learning_rate=1e-4"],
    # reversed answers, pre-trained mostly on level 1 (2 digits) with a little of level 2 (3 digits)
    # (a mix override merges into the default mix: levels left out keep their default shares)
    "rev_1000_lr3e-4": ["task=arith_rev", "model.pretrain.task=arith_rev",
                        "model.pretrain.mix={1: 0.9, 2: 0.1, 3: 0, 4: 0}", "model.pretrain.steps=1000",
                        "model.pretrain.decay_steps=200", "train.learning_rate=3e-4"],
    "rev_1000_lr3e-5": ["task=arith_rev", "model.pretrain.task=arith_rev",
                        "model.pretrain.mix={1: 0.9, 2: 0.1, 3: 0, 4: 0}", "model.pretrain.steps=1000",
                        "model.pretrain.decay_steps=200"],
    # reversed answers, pre-trained on levels 1-3 (60 / 30 / 10 %): level 2 learnable before RL
    "revmix_1000_lr1e-4": ["task=arith_rev", "model.pretrain.task=arith_rev",
                           "model.pretrain.mix={1: 0.6, 2: 0.3, 3: 0.1, 4: 0}", "model.pretrain.steps=1000",
                           "model.pretrain.decay_steps=200", "train.learning_rate=1e-4"],
    "revmix_1000_lr1e-4_kl": ["task=arith_rev", "model.pretrain.task=arith_rev",
                              "model.pretrain.mix={1: 0.6, 2: 0.3, 3: 0.1, 4: 0}", "model.pretrain.steps=1000",
                              "model.pretrain.decay_steps=200", "train.learning_rate=1e-4", "algorithm.beta=0.04"],
    # three-digit sums levelled by carries (0 / 1 / 2 / 3): one level is one carry harder, same width;
    # pre-trained mostly without carries, a little with one
    "carry_1000_lr1e-4": ["task=arith_carry", "model.pretrain.task=arith_carry",
                          "model.pretrain.mix={1: 0.8, 2: 0.2, 3: 0, 4: 0}", "model.pretrain.steps=1000",
                          "model.pretrain.decay_steps=200", "train.learning_rate=1e-4"],
    # ... pre-trained almost without carries: level 2 (one carry) barely learnable, level 3 near 0
    "carry_1000_l1_lr1e-4": ["task=arith_carry", "model.pretrain.task=arith_carry",
                             "model.pretrain.mix={1: 0.95, 2: 0.05, 3: 0, 4: 0}", "model.pretrain.steps=1000",
                             "model.pretrain.decay_steps=200", "train.learning_rate=1e-4"],
}  # fmt: skip
BASE = ["experiment=testbed", "profile=testbed"]


def split_overrides(overrides: list[str]) -> tuple[str, list[str], list[str]]:
    """``(task, model overrides without the model. prefix, run overrides)`` of a candidate."""
    task = next((o.split("=", 1)[1] for o in overrides if o.startswith("task=")), "arith_bare")
    model = [o[len("model.") :] for o in overrides if o.startswith("model.")]
    run = [o for o in overrides if not o.startswith(("task=", "model."))]
    return task, model, run


def build(model_overrides: list[str]) -> Path:
    """The candidate's pre-trained model directory (built and cached on first use)."""
    from sec.models import testbed
    from sec.models.core import default_config

    cache = os.environ.get("SEC_CACHE_DIR") or str(Path.home() / ".cache" / "sec")
    return testbed.materialise(default_config("testbed_lm", model_overrides), cache)


def probe_all(path: Path, task: dict, levels: list[int], args: argparse.Namespace) -> dict[int, dict]:
    """:func:`testbed_probe.probe_level` of the model at ``path`` on every level."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path, padding_side="left")
    extraction = str(task.get("answer_extraction", "last_number"))
    return {
        lv: probe_level(model, tok, test_problems(task, lv, args.problems), args.k, 1.0, extraction=extraction)
        for lv in levels
    }


def rl_on_level(model_path: Path, task: str, level: int, run_overrides: list[str], steps: int, out: Path) -> float:
    """``steps`` GRPO steps on ``level`` alone from the model at ``model_path`` (``sec.launch``, no
    evaluation; one checkpoint at the end, so that the final model is saved under ``out``); returns
    the median wall seconds per step."""
    from sec.metrics import read_metrics

    cmd = [
        sys.executable, "-m", "sec.launch", *BASE, f"task={task}", f"task.train_levels=[{level}]",
        "model.source=local", f"+model.local_path={model_path}", *run_overrides, f"train.steps={steps}",
        "eval.every=0", "eval.at_start=false", f"train.save_every={steps}", f"hydra.run.dir={out}",
    ]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"RL run failed ({' '.join(cmd)}):\n{r.stderr[-3000:]}")
    times = [x["wall_time_s"] for x in read_metrics(out / "metrics.jsonl") if x["kind"] == "train"]
    return float(np.median(times[1:] or times))


def fmt(res: dict) -> str:
    return f"{res['pass@1']:.3f} ({res['zero_var']:.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidates", nargs="+", default=list(CANDIDATES), help="preset names or name=o1;o2;...")
    ap.add_argument("--levels", type=int, nargs="*", default=None, help="probed levels (default: all of the task)")
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--rl-steps", type=int, default=100)
    ap.add_argument("--rl-levels", type=int, nargs="*", default=None, help="levels RL trains on, one run each "
                    "(default: every training level of the task)")  # fmt: skip
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="also append the rows here (JSON lines)")
    args = ap.parse_args()
    import torch

    from sec.models import testbed
    from sec.models.testbed_train import task_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("sec.tasks").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    for spec in args.candidates:
        name, _, inline = spec.partition("=")
        overrides = inline.split(";") if inline else CANDIDATES[name]
        task_name, model_overrides, run_overrides = split_overrides(overrides)
        t0 = time.perf_counter()
        path = build(model_overrides)
        built_s = json.loads((path / testbed.PRETRAIN_RECORD).read_text())["seconds"]
        task = task_config(task_name)
        levels = args.levels or sorted(task["levels"])
        rows = [("before RL", probe_all(path, task, levels, args), None)]
        for level in args.rl_levels or task["train_levels"]:
            with tempfile.TemporaryDirectory() as tmp:
                s = rl_on_level(path, task_name, int(level), run_overrides, args.rl_steps, Path(tmp) / "run")
                rows.append((f"RL on L{level}", probe_all(Path(tmp) / "run" / "final_model", task, levels, args), s))
        load = os.getloadavg()[0]
        print(
            f"\ncandidate {name}: {' '.join(overrides)}\n  model {path.name} (pre-trained in {built_s:.0f} s); "
            f"{args.rl_steps} GRPO steps per level; pass@1 (zero-var) of k={args.k} at temperature 1.0 on "
            f"{args.problems} test problems per level; {time.perf_counter() - t0:.0f} s in all, load {load:.1f}"
        )
        print("| state | " + " | ".join(f"L{lv}" for lv in levels) + " | s/step |")
        print("|---|" + "---|" * (len(levels) + 1))
        for label, res, s in rows:
            cells = " | ".join(fmt(res[lv]) for lv in levels)
            print(f"| {label} | {cells} | {'' if s is None else f'{s:.2f}'} |")
        if args.out:
            with args.out.open("a") as f:
                for label, res, s in rows:
                    f.write(json.dumps({"candidate": name, "overrides": overrides, "state": label,
                                        "levels": {str(k): v for k, v in res.items()}, "s_per_step": s,
                                        "rl_steps": args.rl_steps, "problems": args.problems, "k": args.k,
                                        "load": load}) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
