"""Time-bounded puzzle generation (sec/tasks/timed_items.py, sec/tasks/generation.py): hanging
reasoning-gym items are skipped and logged within a CPU-time bound, at any worker count, in index
order. Split from test_tasks.py."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import pytest
from task_configs import CONFIGS

import sec.tasks.timed_items as timed_items
from sec.tasks import ItemGenerationError, generate_items


class _Hanging:
    """Wraps a real dataset; chosen indices spin forever (burning CPU) like reasoning-gym's arc_1d at
    size >= 45."""

    def __init__(self, real: Any, hang: set[int] | None) -> None:
        self.real, self.hang = real, hang

    def __getitem__(self, idx: int) -> dict[str, Any]:
        if self.hang is None or idx in self.hang:
            x = 0
            while True:
                x += 1
        return self.real[idx]


def _patch_hanging(monkeypatch: pytest.MonkeyPatch, hang: set[int] | None) -> None:
    make = timed_items._make_dataset
    monkeypatch.setattr(timed_items, "_make_dataset", lambda *a: _Hanging(make(*a), hang))


@pytest.mark.parametrize("workers", [1, 2])
def test_hanging_items_are_skipped_and_logged(
    workers: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    level = CONFIGS["countdown"]["levels"][1]
    _patch_hanging(monkeypatch, {1, 3})
    caplog.set_level(logging.INFO, logger="sec.tasks")
    start = time.perf_counter()
    out = generate_items("countdown", 1, level, 4, 3, "train", item_timeout_s=0.2, workers=workers)
    assert time.perf_counter() - start < 10
    assert [json.loads(r["metadata"])["source_index"] for r in out] == [0, 2, 4, 5]
    assert [r["id"] for r in out] == [f"countdown/train/L1/{k:05d}" for k in range(4)]
    assert "2 reasoning-gym items skipped" in caplog.text
    monkeypatch.undo()
    plain = generate_items("countdown", 1, level, 6, 3, "train", workers=1, progress=False)
    assert [r["question"] for r in out] == [plain[i]["question"] for i in (0, 2, 4, 5)]


def test_always_hanging_generator_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch_hanging(monkeypatch, None)
    start = time.perf_counter()
    with pytest.raises(ItemGenerationError, match="5 in a row"):
        generate_items("arc", 1, CONFIGS["arc"]["levels"][1], 50, 3, "test", item_timeout_s=0.1)
    assert time.perf_counter() - start < 5


def test_real_arc_hang_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    # reasoning-gym 0.1.25 arc_1d 'recolor_blocks_from_palette' never returns for some seeds at size 60
    caplog.set_level(logging.INFO, logger="sec.tasks")
    kwargs = {"min_size": 60, "max_size": 60, "num_train": 3}
    out = generate_items("arc", 9, kwargs, 100, 1, "test", item_timeout_s=0.25, progress=False)
    assert len(out) == 100
    assert "skipped reasoning-gym item 70 (timed out after 0.25 s of CPU time)" in caplog.text


def test_workers_and_threads_give_the_same_items() -> None:
    args = ("countdown", 2, CONFIGS["countdown"]["levels"][2], 12, 7, "train")
    inline = generate_items(*args, workers=1, progress=False)
    assert generate_items(*args, workers=2, progress=False) == inline
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(generate_items(*args, workers=1, progress=False)))
    thread.start()
    thread.join(60)
    assert result == [inline]  # off the main thread: a worker process enforces the time bound


class _Uneven:
    """Wraps a real dataset; every 5th index is slow, so workers finish chunks out of order."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getitem__(self, idx: int) -> dict[str, Any]:
        if idx % 5 == 0:
            time.sleep(0.02)
        return self.real[idx]


def test_time_bound_is_cpu_time_not_wall_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # an item that waits (a loaded machine: the process gets no CPU) is not a hang
    class Waiting:
        def __init__(self, real: Any) -> None:
            self.real = real

        def __getitem__(self, idx: int) -> dict[str, Any]:
            if idx == 1:
                time.sleep(0.5)
            return self.real[idx]

    make = timed_items._make_dataset
    monkeypatch.setattr(timed_items, "_make_dataset", lambda *a: Waiting(make(*a)))
    for workers in (1, 2):
        stats: dict[str, Any] = {}
        out = generate_items(
            "countdown", 1, CONFIGS["countdown"]["levels"][1], 3, 3, "train",
            item_timeout_s=0.2, workers=workers, progress=False, stats=stats,
        )  # fmt: skip
        assert stats["skipped"] == 0 and [json.loads(r["metadata"])["source_index"] for r in out] == [0, 1, 2]


def test_dynamic_dispatch_keeps_index_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # 3 workers, chunk 4: slow chunks come back late and must be reordered into index order
    args = ("countdown", 1, CONFIGS["countdown"]["levels"][1], 200, 11, "train")
    inline = generate_items(*args, workers=1, progress=False)
    make = timed_items._make_dataset
    monkeypatch.setattr(timed_items, "_make_dataset", lambda *a: _Uneven(make(*a)))
    assert generate_items(*args, workers=3, progress=False) == inline
