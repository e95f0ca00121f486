"""Answer extraction and puzzle rewards (SEC.md §2): known cases and fuzzing."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sec.tasks import extract_last_boxed, is_correct, puzzle_reward
from sec.tasks.countdown import countdown_correct

COUNTDOWN = {
    "task": "countdown",
    "answer": json.dumps({"generator": "countdown", "answer": "91 + 17 + 5", "numbers": [5, 17, 91], "target": 113}),
}
ZEBRA = {"task": "zebra", "answer": json.dumps({"generator": "zebra_puzzles", "answer": "arnold"})}
ARC = {"task": "arc", "answer": json.dumps({"generator": "arc_1d", "answer": "8 9 4 0 0 0 0 1 6 7"})}
RECORDS = [COUNTDOWN, ZEBRA, ARC]


def boxed(text: str) -> str:
    return f"Let me think... so the answer is \\boxed{{{text}}}."


# ---------------------------------------------------------------------------------------------- boxes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{42}", "42"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("first \\boxed{a} then \\boxed{b}", "b"),
        ("\\boxed{\\boxed{inner}}", "inner"),  # last \boxed{ opening is the inner one
        ("\\boxed {x + 1}", "x + 1"),
        ("\\boxed{}", ""),
        ("\\boxed{ Alice }", " Alice "),
        ("\\boxed{a} and then \\boxed{b", None),  # truncated last box
        ("\\boxed{{a}", None),
        ("no box here", None),
        ("\\boxed 5", None),  # brace-less form is not recognised
        ("", None),
    ],
)
def test_extract_last_boxed(text: str, expected: str | None) -> None:
    assert extract_last_boxed(text) == expected


@pytest.mark.parametrize("value", [None, 5, b"\\boxed{1}", ["\\boxed{1}"]])
def test_extract_last_boxed_non_str(value: object) -> None:
    assert extract_last_boxed(value) is None  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ countdown


@pytest.mark.parametrize(
    ("expr", "numbers", "target", "ok"),
    [
        ("91 + 17 + 5", [5, 17, 91], 113, True),
        ("(5 + 17) + 91", [5, 17, 91], 113, True),
        ("  91+17+5 ", [5, 17, 91], 113, True),
        ("-5 + 17 + 91", [5, 17, 91], 103, True),  # rg's sympy-printed references start like this
        ("91 + 17 - 5", [5, 17, 91], 113, False),  # wrong value
        ("91 + 22", [5, 17, 91], 113, False),  # wrong numbers
        ("91 + 17", [5, 17, 91], 108, False),  # missing number
        ("91 + 17 + 5 + 5 - 5", [5, 17, 91], 113, False),  # reused number
        ("8 / (3 - 8 / 3)", [3, 3, 8, 8], 24, True),  # exact only with rational arithmetic
        ("6 / (1 - 3 / 4)", [1, 3, 4, 6], 24, True),
        ("1 / (5 - 5)", [1, 5, 5], 1, False),  # division by zero is wrong, not a crash
        ("9**9**9", [9, 9, 9], 1, False),  # power is not allowed (and never evaluated)
        ("2^3", [2, 3], 1, False),
        ("5.0 + 17 + 91", [5, 17, 91], 113, False),
        ("91 + 17 + 5 = 113", [5, 17, 91], 113, False),
        ("__import__('os').system('true')", [5, 17, 91], 113, False),
        ("(91)(17)", [17, 91], 1547, False),
        ("91 * 1_7", [17, 91], 1547, False),
        ("", [1], 1, False),
        ("1+" * 5000 + "1", [1] * 5001, 5001, False),  # too long
        ("(" * 400 + "5" + ")" * 400, [5], 5, False),  # too deep for the parser
    ],
)
def test_countdown_correct(expr: str, numbers: list[int], target: int, ok: bool) -> None:
    start = time.perf_counter()
    assert countdown_correct(expr, numbers, target) is ok
    assert time.perf_counter() - start < 1.0


def test_countdown_reward() -> None:
    assert puzzle_reward(boxed("91 + 17 + 5"), COUNTDOWN, train=True) == 1.0
    assert puzzle_reward(boxed("91 + 17 + 5"), COUNTDOWN, train=False) == 1.0
    assert puzzle_reward(boxed("91 * 17 * 5"), COUNTDOWN, train=True) == pytest.approx(0.1)
    assert puzzle_reward(boxed("9**9**9"), COUNTDOWN, train=True) == pytest.approx(0.1)
    assert puzzle_reward(boxed("91 * 17 * 5"), COUNTDOWN, train=False) == 0.0
    assert puzzle_reward("91 + 17 + 5", COUNTDOWN, train=True) == 0.0  # no box, no format reward
    # the last box counts
    assert puzzle_reward("\\boxed{91 + 17 + 5} no wait \\boxed{91 - 17}", COUNTDOWN, train=False) == 0.0
    assert puzzle_reward("\\boxed{91 - 17} no wait \\boxed{91 + 17 + 5}", COUNTDOWN, train=False) == 1.0


# ---------------------------------------------------------------------------------------- zebra / arc


def test_zebra_reward() -> None:
    for name in ("arnold", "Arnold", " ARNOLD\n"):
        assert puzzle_reward(boxed(name), ZEBRA, train=False) == 1.0
    assert puzzle_reward(boxed("bob"), ZEBRA, train=True) == pytest.approx(0.1)
    assert puzzle_reward(boxed("bob"), ZEBRA, train=False) == 0.0
    assert puzzle_reward(boxed("arnold and bob"), ZEBRA, train=False) == 0.0
    assert puzzle_reward("The answer is Arnold.", ZEBRA, train=True) == 0.0


def test_arc_reward() -> None:
    assert puzzle_reward(boxed("8 9 4 0 0 0 0 1 6 7"), ARC, train=False) == 1.0
    assert puzzle_reward(boxed("\n8 9 4  0 0 0 0 1 6\n7 "), ARC, train=False) == 1.0  # whitespace runs
    assert puzzle_reward(boxed("8 9 4 0 0 0 0 1 6 6"), ARC, train=True) == pytest.approx(0.1)
    # reasoning-gym gives partial credit (< 1) when the reference is contained: still wrong
    assert puzzle_reward(boxed("8 9 4 0 0 0 0 1 6 7 0"), ARC, train=False) == 0.0
    assert puzzle_reward(boxed("[8, 9, 4, 0, 0, 0, 0, 1, 6, 7]"), ARC, train=False) == 0.0


def test_format_reward_only_in_training() -> None:
    wrong = boxed("definitely wrong")
    for record in RECORDS:
        assert puzzle_reward(wrong, record, train=True) == pytest.approx(0.1)
        assert puzzle_reward(wrong, record, train=True, format_reward=0.25) == pytest.approx(0.25)
        assert puzzle_reward(wrong, record, train=False) == 0.0
        assert puzzle_reward(wrong, record, train=False, format_reward=0.25) == 0.0
        assert puzzle_reward("\\boxed{}", record, train=True) == pytest.approx(0.1)
        assert puzzle_reward("\\boxed{unbalanced", record, train=True) == 0.0


def test_is_correct_task_names() -> None:
    zebra = json.loads(ZEBRA["answer"])
    del zebra["generator"]
    assert is_correct("zebra", "Arnold", zebra)
    assert is_correct("zebra_puzzles", "Arnold", zebra)
    assert not is_correct("zebra", None, zebra)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown puzzle task"):
        is_correct("chess", "e4", {"answer": "e4"})


def test_bad_record_raises() -> None:
    with pytest.raises(ValueError, match="unknown puzzle task"):
        puzzle_reward("\\boxed{1}", {"task": "chess", "answer": json.dumps({"answer": "1"})}, train=True)
    with pytest.raises(ValueError, match="JSON object"):
        puzzle_reward("\\boxed{1}", {"task": "zebra", "answer": 5}, train=True)


# ---------------------------------------------------------------------------------------------- fuzz

FRAGMENTS = st.sampled_from(
    ["\\boxed{", "\\boxed", "{", "}", "\\frac{", " ", "\n", "91", "17", "5", "+", "-", "*", "/", "**", "(", ")",
     "9**9**9", "arnold", "8 9 4 0 0 0 0 1 6 7", "\\", "=", ".", "0", "1e309", "_", "\x00", "é"]
)  # fmt: skip
FUZZ_TEXT = st.one_of(st.text(), st.lists(st.one_of(FRAGMENTS, st.text(max_size=5)), max_size=40).map("".join))


@settings(max_examples=300, deadline=None)
@given(text=FUZZ_TEXT, train=st.booleans())
def test_fuzz_never_raises(text: str, train: bool) -> None:
    extract_last_boxed(text)
    for record in RECORDS:
        reward = puzzle_reward(text, record, train=train)
        assert reward in ((0.0, 0.1, 1.0) if train else (0.0, 1.0))


@settings(max_examples=300, deadline=None)
@given(inner=st.lists(FRAGMENTS, max_size=30).map("".join))
def test_fuzz_boxed_answers(inner: str) -> None:
    for record in RECORDS:
        answer = json.loads(record["answer"])
        assert isinstance(is_correct(record["task"], inner, answer), bool)
        assert puzzle_reward(f"\\boxed{{{inner}}}", record, train=False) in (0.0, 1.0)
