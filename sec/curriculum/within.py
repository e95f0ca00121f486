"""How a problem is drawn inside the group a batch slot picked (an arm, or a difficulty stage).

Every policy that first picks a group per slot and then a problem in it takes one of these
parts (``within:`` in its YAML, ``conf/curriculum/within/``):

* :class:`Uniform` (SEC.md §1, Algorithm 1: "draw one problem uniformly from category c"),
  with replacement.
* :class:`ShuffledQueue`: without replacement. Each group is a shuffled queue; a draw takes the
  next problem. With ``reshuffle=True`` an exhausted queue is refilled with a fresh shuffle (the
  released SEC code's ``BanditDataloader``, ``verl/utils/auto_curriculum/dataloader.py``
  L183-256, as vendored in Vincent-La/cofa ``sec/``); with ``reshuffle=False`` it starts over in
  the same order (E2H's ``TaskSampler``, divelab/E2H-Reasoning ``src/trainer.py`` L32-36 and
  L98-102). The released SEC loader refills every arm as soon as one arm holds less than a batch
  (the leftovers first, then a fresh shuffle), so the per-arm order is the same as here: only
  the order in which the shared RNG is consumed differs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np


class Within(ABC):
    """Draws one problem inside each slot's group (see module doc)."""

    @abstractmethod
    def setup(self, groups: list[np.ndarray], rng: np.random.Generator) -> None:
        """Bind to the problem indices of every group (called once by the policy)."""

    @abstractmethod
    def draw(self, group_of_slots: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One problem index per slot, int64 (n,), from the slot's group (int (n,))."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Nothing to restore by default."""


class Uniform(Within):
    """Uniform with replacement within the group: ``rng.integers(0, size)`` per slot."""

    def setup(self, groups: list[np.ndarray], rng: np.random.Generator) -> None:
        # group g's problems are _flat[_start[g] : _start[g] + _size[g]] (vectorised draws)
        self._flat = np.concatenate(groups)
        self._size = np.array([m.size for m in groups], dtype=np.int64)
        self._start = np.concatenate([[0], np.cumsum(self._size)[:-1]]).astype(np.int64)

    def draw(self, group_of_slots: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        g = np.asarray(group_of_slots, dtype=np.int64)
        return self._flat[self._start[g] + rng.integers(0, self._size[g])]


class ShuffledQueue(Within):
    """Without replacement: one shuffled queue per group (see module doc).

    Args:
        reshuffle: refill an exhausted queue with a fresh shuffle (True, released SEC code) or
            restart the same order (False, E2H).
    """

    def __init__(self, reshuffle: bool) -> None:
        self.reshuffle = bool(reshuffle)

    def setup(self, groups: list[np.ndarray], rng: np.random.Generator) -> None:
        self._groups = groups
        self._queues = [rng.permutation(m) for m in groups]
        self._cursor = np.zeros(len(groups), dtype=np.int64)

    def draw(self, group_of_slots: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        g = np.asarray(group_of_slots, dtype=np.int64)
        out = np.empty(g.size, dtype=np.int64)
        for k in np.unique(g):
            slots = np.flatnonzero(g == k)
            out[slots] = self._take(int(k), slots.size, rng)
        return out

    def _take(self, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
        parts = []
        while n > 0:
            queue, pos = self._queues[k], int(self._cursor[k])
            if pos == queue.size:
                if self.reshuffle:
                    self._queues[k] = rng.permutation(self._groups[k])
                self._cursor[k] = pos = 0
                queue = self._queues[k]
            take = min(n, queue.size - pos)
            parts.append(queue[pos : pos + take])
            self._cursor[k] += take
            n -= take
        return np.concatenate(parts)

    def state_dict(self) -> dict[str, Any]:
        return {"queues": [q.tolist() for q in self._queues], "cursor": self._cursor.tolist()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._queues = [np.asarray(q, dtype=np.int64) for q in state["queues"]]
        self._cursor = np.asarray(state["cursor"], dtype=np.int64)
