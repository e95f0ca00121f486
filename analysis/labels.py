"""Display labels and display order of the values the tables and figures show (task, split, model,
algorithm, curriculum)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sec.tasks.registry import task_labels

#: each task config's display label (``label`` in conf/task/<name>.yaml)
TASK_LABELS = task_labels()
SPLIT_LABELS = {"id": "ID", "ood": "OOD", "math500": "MATH500", "amc": "AMC22-23", "aime24": "AIME24"}
MODEL_LABELS = {"qwen2.5_3b": "3B", "qwen2.5_7b": "7B", "smollm2_135m": "SmolLM2-135M", "tiny": "tiny"}
CURRICULUM_LABELS = {
    "random": "random",
    "ordered": "ordered",
    "reverse": "reverse",
    "sec": "SEC",
    "sec_2d": "SEC-2D",
    # the bandit variants (conf/curriculum/sec_*.yaml, not in the paper)
    "sec_ucb": "SEC-UCB",
    "sec_thompson": "SEC-Thompson",
    "sec_egreedy": "SEC-ε-greedy",
    "sec_progress": "SEC-progress",
    "sec_success": "SEC-success",
    # the peers' curricula (conf/curriculum/, docs/curriculum.md; the league, docs/league.md)
    "sec_greso": "SEC+GRESO",
    "dump": "DUMP",
    "mopps": "MoPPS",
    "e2h": "E2H-G",
    "e2h_cosine": "E2H-C",
    "adarft": "AdaRFT",
    "learnability": "learnability",
}
ALGORITHM_LABELS = {"grpo": "GRPO", "ppo": "PPO", "rloo": "RLOO"}
KEY_LABELS = {"task": "task", "split": "split", "algorithm": "RL method", "model": "model", "curriculum": "curriculum"}

#: display order of values (others follow, sorted)
ORDER = {
    "task": ["countdown", "zebra", "arc", "math", "puzzles"],
    "split": ["id", "ood", "math500", "amc", "aime24"],
    "model": ["qwen2.5_3b", "qwen2.5_7b"],
    "algorithm": ["grpo", "ppo", "rloo"],
    "curriculum": [
        "random",
        "ordered",
        "reverse",
        "sec",
        "sec_2d",
        "sec_greso",
        "dump",
        "mopps",
        "e2h",
        "e2h_cosine",
        "adarft",
        "learnability",
    ],
}
#: splits shown by default (per-level splits with ``levels=True``)
MAIN_SPLITS = ("id", "ood", "math500", "amc", "aime24")


def label(key: str, value: Any) -> str:
    """Display label of a value of ``key`` (task, split, model, algorithm, curriculum)."""
    maps = {
        "task": TASK_LABELS,
        "split": SPLIT_LABELS,
        "model": MODEL_LABELS,
        "curriculum": CURRICULUM_LABELS,
        "algorithm": ALGORITHM_LABELS,
    }
    v = str(value)
    if key == "split" and v.startswith("level_"):
        return f"L{v[6:]}"
    return maps.get(key, {}).get(v, v)


def sort_values(key: str, values: Iterable[Any]) -> list[Any]:
    """``values`` in display order (:data:`ORDER`, then level splits by number, then sorted)."""
    order = ORDER.get(key, [])

    def rank(v: Any) -> tuple[int, float, str]:
        s = str(v)
        if s in order:
            return (0, order.index(s), "")
        if key == "split" and s.startswith("level_") and s[6:].isdigit():
            return (1, int(s[6:]), "")
        return (2, 0, s)

    return sorted(set(values), key=rank)
