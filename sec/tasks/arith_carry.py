"""Sums levelled by their carries: a candidate chained regime of the testbed (docs/testbed.md; not in the paper).

reasoning-gym ``basic_arithmetic`` two-term sums with ``arith_bare``'s bare prompt and answer
(``352+17=`` -> ``369``), kept only when the column addition carries exactly ``carries`` times.
All levels of one width share every position, so the step from one level to the next is one carry,
not one digit (the regime probe found that RL on d-digit sums does not reach d+1 digits here).
Written most-significant digit first, a carry makes an answer digit depend on the column to its
right: each level asks for one more such look-ahead.

Items. Level kwargs are ``basic_arithmetic``'s plus ``carries`` (int >= 0). Item ``i`` of a level is
the first item with that many carries among the reasoning-gym items ``i * SCAN .. i * SCAN + SCAN - 1``
of the same seed (:data:`SCAN` = 64), so items stay addressable by index and deterministic; an index
whose block has none raises (the generator skips and counts it; at the rarest level used here, about
10 % of draws, that is ~0.9^64 ≈ 1e-3 of indices). Checker: :class:`sec.tasks.arith.ArithTask`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sec.tasks.arith_bare import ArithBareTask
from sec.tasks.registry import register

__all__ = ["SCAN", "ArithCarryTask", "CarryFiltered", "count_carries"]

#: reasoning-gym items scanned per item of a carry level (module doc).
SCAN = 64


def count_carries(a: int, b: int) -> int:
    """Carries of the column addition of two non-negative integers (``57 + 68`` -> 2).

    Raises:
        ValueError: a negative operand.
    """
    if a < 0 or b < 0:
        raise ValueError(f"count_carries takes non-negative operands, got {a} and {b}")
    carries = carry = 0
    while a or b:
        carry = int(a % 10 + b % 10 + carry >= 10)
        carries += carry
        a, b = a // 10, b // 10
    return carries


def item_carries(item: Mapping[str, Any]) -> int:
    """:func:`count_carries` of a ``basic_arithmetic`` two-term sum item (its ``expression``)."""
    terms = str(item["metadata"]["expression"]).replace(" ", "").split("+")
    if len(terms) != 2 or not all(t.isdigit() for t in terms):
        raise ValueError(f"arith_carry items are two-term sums of non-negative integers, got {terms!r}")
    return count_carries(int(terms[0]), int(terms[1]))


class CarryFiltered:
    """The items of ``dataset`` with exactly ``carries`` carries, addressed by index (module doc)."""

    def __init__(self, dataset: Any, carries: int, scan: int = SCAN) -> None:
        self.dataset, self.carries, self.scan = dataset, int(carries), int(scan)
        self.size = len(dataset) // self.scan

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, Any]:
        """The first item with ``carries`` carries in block ``index`` of ``scan`` source items.

        Raises:
            LookupError: the block has none (the generator skips the index).
        """
        start = (int(index) % self.size) * self.scan
        for j in range(start, start + self.scan):
            item = self.dataset[j]
            if item_carries(item) == self.carries:
                return item
        raise LookupError(f"no sum with {self.carries} carries among items {start}..{start + self.scan - 1}")


class ArithCarryTask(ArithBareTask):
    """``arith_bare`` sums levelled by their number of carries (module doc)."""

    name = "arith_carry"

    def make_dataset(self, level_kwargs: Mapping[str, Any], seed: int) -> CarryFiltered:
        """reasoning-gym ``basic_arithmetic`` with the level's other kwargs, filtered to ``carries``."""
        kwargs = dict(level_kwargs)
        carries = kwargs.pop("carries")
        return CarryFiltered(super().make_dataset(kwargs, seed), carries)

    def validate_level(self, name: str, level: int, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``basic_arithmetic`` kwargs of two-term sums without negation, plus ``carries``.

        Raises:
            ValueError: ``carries`` missing, negative or more than ``max_digits``; another operator,
                another number of terms, or negation.
        """
        kwargs = dict(kwargs)
        carries = kwargs.pop("carries", None)
        if not isinstance(carries, int) or isinstance(carries, bool) or carries < 0:
            raise ValueError(f"task {name!r} level {level}: 'carries' must be an int >= 0, got {carries!r}")
        kwargs = super().validate_level(name, level, kwargs)
        if (
            list(kwargs.get("operators", ["+"])) != ["+"]
            or kwargs.get("allow_negation", False)
            or (kwargs.get("min_terms"), kwargs.get("max_terms")) != (2, 2)
        ):
            raise ValueError(
                f"task {name!r} level {level}: arith_carry levels are two-term sums: operators ['+'], "
                f"min_terms = max_terms = 2 and allow_negation false, got {kwargs}"
            )
        if carries > int(kwargs["max_digits"]):
            raise ValueError(
                f"task {name!r} level {level}: {carries} carries need more than {kwargs['max_digits']} digits"
            )
        return {**kwargs, "carries": carries}


register(ArithCarryTask())
