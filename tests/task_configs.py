"""Tiny task configs shared by test_tasks.py and test_generation_bounds.py."""

from __future__ import annotations

from typing import Any

# Same level tables as conf/task/*.yaml (SEC.md §2), tiny sizes.
COUNTDOWN_LEVELS = {
    k: {"min_numbers": n, "max_numbers": n, "min_value": 1, "max_value": 100, "min_target": 1, "max_target": 1000}
    for k, n in {1: 3, 2: 4, 3: 5, 4: 6}.items()
}
CONFIGS: dict[str, dict[str, Any]] = {
    "countdown": {
        "name": "countdown",
        "generator": "countdown",
        "levels": COUNTDOWN_LEVELS,
        "train_levels": [1, 2, 3],
        "test_levels": [1, 2, 3, 4],
        "train_per_level": 5,
        "test_per_level": 3,
        "seed": 11,
        "format_reward": 0.1,
    },
    "zebra": {  # zebra 6x6 costs ~2 s/item: level 4 only in test_zebra_ood_level
        "name": "zebra",
        "generator": "zebra_puzzles",
        "levels": {k: {"num_people": k + 2, "num_characteristics": k + 2} for k in (1, 2, 3, 4)},
        "train_levels": [1, 2, 3],
        "test_levels": [1, 2, 3],
        "train_per_level": 2,
        "test_per_level": 1,
        "seed": 12,
    },
    "arc": {
        "name": "arc",
        "generator": "arc_1d",
        "levels": {k: {"min_size": 10 * k, "max_size": 10 * k, "num_train": 3} for k in (1, 2, 3, 4)},
        "train_levels": [1, 2, 3],
        "test_levels": [1, 2, 3, 4],
        "train_per_level": 5,
        "test_per_level": 3,
        "seed": 13,
    },
}
