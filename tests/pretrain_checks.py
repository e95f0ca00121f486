"""A check shared by the tests of the testbed model's sum tasks (test_arith_rev.py, test_arith_carry.py)."""

from __future__ import annotations

from sec.models import testbed
from sec.models.testbed_train import PretrainData, excluded_expressions, task_config


def pretrain_sums(task_name: str, mix: dict[int, float], test: set[str], steps: int, batch_size: int) -> list:
    """``(level, a, b, answer text)`` of the pre-training problems of ``steps`` steps of ``task_name``
    at ``mix``, after checking that the excluded expressions hold every test problem, that no test
    problem is drawn and that every level of ``mix`` is."""
    task = task_config(task_name)
    excluded = excluded_expressions(task, 100)
    assert test <= excluded
    pre = PretrainData(task, mix, 0, excluded, testbed.build_tokenizer(), batch_size=batch_size)
    drawn = [row for step in range(steps) for row in pre.problems(step)]
    assert {lv for lv, _, _ in drawn} == set(mix) and not {p for _, p, _ in drawn} & test
    out = []
    for level, prompt, answer in drawn:
        a, b = (int(x) for x in prompt[:-1].split("+"))
        out.append((level, a, b, answer))
    return out
