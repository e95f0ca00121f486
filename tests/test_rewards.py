"""Answer extraction and puzzle rewards (SEC.md §2): known cases and fuzzing."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sec.tasks import extract_last_boxed, is_correct, puzzle_reward
from sec.tasks.answers import extract_last_number
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
    assert puzzle_reward(boxed("91 + 17 + 5"), COUNTDOWN, train=True, format_reward=0.1, extraction="boxed") == 1.0
    assert puzzle_reward(boxed("91 + 17 + 5"), COUNTDOWN, train=False, format_reward=0.1, extraction="boxed") == 1.0
    assert puzzle_reward(
        boxed("91 * 17 * 5"), COUNTDOWN, train=True, format_reward=0.1, extraction="boxed"
    ) == pytest.approx(0.1)
    assert puzzle_reward(
        boxed("9**9**9"), COUNTDOWN, train=True, format_reward=0.1, extraction="boxed"
    ) == pytest.approx(0.1)
    assert puzzle_reward(boxed("91 * 17 * 5"), COUNTDOWN, train=False, format_reward=0.1, extraction="boxed") == 0.0
    assert (
        puzzle_reward("91 + 17 + 5", COUNTDOWN, train=True, format_reward=0.1, extraction="boxed") == 0.0
    )  # no box, no format reward
    # the last box counts
    assert (
        puzzle_reward(
            "\\boxed{91 + 17 + 5} no wait \\boxed{91 - 17}",
            COUNTDOWN,
            train=False,
            format_reward=0.1,
            extraction="boxed",
        )
        == 0.0
    )
    assert (
        puzzle_reward(
            "\\boxed{91 - 17} no wait \\boxed{91 + 17 + 5}",
            COUNTDOWN,
            train=False,
            format_reward=0.1,
            extraction="boxed",
        )
        == 1.0
    )


# ---------------------------------------------------------------------------------------- zebra / arc


def test_zebra_reward() -> None:
    for name in ("arnold", "Arnold", " ARNOLD\n"):
        assert puzzle_reward(boxed(name), ZEBRA, train=False, format_reward=0.1, extraction="boxed") == 1.0
    assert puzzle_reward(boxed("bob"), ZEBRA, train=True, format_reward=0.1, extraction="boxed") == pytest.approx(0.1)
    assert puzzle_reward(boxed("bob"), ZEBRA, train=False, format_reward=0.1, extraction="boxed") == 0.0
    assert puzzle_reward(boxed("arnold and bob"), ZEBRA, train=False, format_reward=0.1, extraction="boxed") == 0.0
    assert puzzle_reward("The answer is Arnold.", ZEBRA, train=True, format_reward=0.1, extraction="boxed") == 0.0


def test_arc_reward() -> None:
    assert puzzle_reward(boxed("8 9 4 0 0 0 0 1 6 7"), ARC, train=False, format_reward=0.1, extraction="boxed") == 1.0
    assert (
        puzzle_reward(boxed("\n8 9 4  0 0 0 0 1 6\n7 "), ARC, train=False, format_reward=0.1, extraction="boxed") == 1.0
    )  # whitespace runs
    assert puzzle_reward(
        boxed("8 9 4 0 0 0 0 1 6 6"), ARC, train=True, format_reward=0.1, extraction="boxed"
    ) == pytest.approx(0.1)
    # reasoning-gym gives partial credit (< 1) when the reference is contained: still wrong
    assert puzzle_reward(boxed("8 9 4 0 0 0 0 1 6 7 0"), ARC, train=False, format_reward=0.1, extraction="boxed") == 0.0
    assert (
        puzzle_reward(boxed("[8, 9, 4, 0, 0, 0, 0, 1, 6, 7]"), ARC, train=False, format_reward=0.1, extraction="boxed")
        == 0.0
    )


def test_format_reward_only_in_training() -> None:
    wrong = boxed("definitely wrong")
    for record in RECORDS:
        assert puzzle_reward(wrong, record, train=True, format_reward=0.1, extraction="boxed") == pytest.approx(0.1)
        assert puzzle_reward(wrong, record, train=True, format_reward=0.25, extraction="boxed") == pytest.approx(0.25)
        assert puzzle_reward(wrong, record, train=False, format_reward=0.1, extraction="boxed") == 0.0
        assert puzzle_reward(wrong, record, train=False, format_reward=0.25, extraction="boxed") == 0.0
        assert puzzle_reward("\\boxed{}", record, train=True, format_reward=0.1, extraction="boxed") == pytest.approx(
            0.1
        )
        assert puzzle_reward("\\boxed{unbalanced", record, train=True, format_reward=0.1, extraction="boxed") == 0.0


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
        puzzle_reward(
            "\\boxed{1}",
            {"task": "chess", "answer": json.dumps({"answer": "1"})},
            train=True,
            format_reward=0.1,
            extraction="boxed",
        )
    with pytest.raises(ValueError, match="JSON object"):
        puzzle_reward("\\boxed{1}", {"task": "zebra", "answer": 5}, train=True, format_reward=0.1, extraction="boxed")


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
        reward = puzzle_reward(text, record, train=train, format_reward=0.1, extraction="boxed")
        assert reward in ((0.0, 0.1, 1.0) if train else (0.0, 1.0))


@settings(max_examples=300, deadline=None)
@given(inner=st.lists(FRAGMENTS, max_size=30).map("".join))
def test_fuzz_boxed_answers(inner: str) -> None:
    for record in RECORDS:
        answer = json.loads(record["answer"])
        assert isinstance(is_correct(record["task"], inner, answer), bool)
        assert puzzle_reward(f"\\boxed{{{inner}}}", record, train=False, format_reward=0.1, extraction="boxed") in (
            0.0,
            1.0,
        )


# ------------------------------------------------------------------------ issue 15: hostile and odd answers


def test_a_line_break_inside_the_boxed_countdown_expression_is_whitespace() -> None:
    assert (
        puzzle_reward("so \\boxed{91 +\n17 + 5}", COUNTDOWN, train=True, format_reward=0.1, extraction="boxed") == 1.0
    )
    assert countdown_correct("91 +\n17\t+ 5", [5, 17, 91], 113)
    assert countdown_correct("(91\n+ 17)\n+ 5\n", [5, 17, 91], 113)


ARITH = {"task": "arith", "answer": json.dumps({"generator": "basic_arithmetic", "answer": "-4"})}


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("so it is \u22124", "-4"),  # Unicode minus sign
        ("\u22124", "-4"),
        ("the total is 1,234 apples", "1234"),  # thousands separators
        ("1,234,567.5", "1234567.5"),
        ("1{,}234", "1234"),
        ("it is 1e3", "1000"),  # scientific notation
        ("1.5E-3", "0.0015"),
        ("3 \\times 10^{2}", "300"),  # LaTeX powers of ten
        ("-3\\cdot 10^2", "-300"),
        ("10^{3}", "1000"),
        ("2^{10} = 1024", "1024"),
        ("so 2^{10}", "1024"),
        ("-4.0", "-4"),  # the value, not the spelling
        ("1,2,3", "3"),  # a list, not a thousands group
        ("f(1, 234)", "234"),
        ("5 - 9 = -4", "-4"),  # unchanged: a minus after a word character is an operator
        ("9-3", "3"),
        ("x2 then 7", "7"),
        ("1/3", "3"),
    ],
)
def test_last_number_reads_what_a_reader_reads(text: str, number: str) -> None:
    assert extract_last_number(text) == number


@pytest.mark.parametrize("text", ["1e99999", "9^{9999}", "10^{-99999}", "7" * 5000])
def test_last_number_of_huge_values_is_quick_and_never_their_digits(text: str) -> None:
    start = time.perf_counter()
    got = extract_last_number(text)
    assert time.perf_counter() - start < 0.5
    assert got is not None and len(got) <= 5000


@pytest.mark.parametrize(
    ("completion", "reward"),
    [
        ("5 - 9 = \u22124", 1.0),
        ("\u22124", 1.0),
        ("it is -4.0", 1.0),
        ("-4e0", 1.0),
        ("-0.4 \\times 10^{1}", 1.0),
        ("5 - 9 = 4", 0.0),
        ("-4.5", 0.0),
    ],
)
def test_arith_scores_numbers_as_a_reader_would(completion: str, reward: float) -> None:
    assert puzzle_reward(completion, ARITH, train=False, format_reward=0.0, extraction="last_number") == reward
    big = {**ARITH, "answer": json.dumps({"generator": "basic_arithmetic", "answer": "1234"})}
    assert puzzle_reward("1,234", big, train=False, format_reward=0.0, extraction="last_number") == 1.0
    assert puzzle_reward("\\boxed{1,234}", big, train=False, format_reward=0.0, extraction="boxed") == 1.0
    assert puzzle_reward("\\boxed{1.234e3}", big, train=False, format_reward=0.0, extraction="boxed") == 1.0


def test_reward_constants_have_no_hidden_default() -> None:
    with pytest.raises(TypeError, match="format_reward"):
        puzzle_reward("\\boxed{1}", ZEBRA, train=True, extraction="boxed")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="extraction"):
        puzzle_reward("\\boxed{1}", ZEBRA, train=True, format_reward=0.1)  # type: ignore[call-arg]


NUMBER_FRAGMENTS = st.sampled_from(
    ["-", "\u2212", "4", "1,234", ",", "{,}", "\\,", "e", "E", "1e3", "e-9", ".", "5", "\\times", "\\cdot", "10",
     "^", "{", "}", "^{", "9999", "-9999", " ", "x", "=", "\\boxed{", "\u2009", "0"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(), st.lists(NUMBER_FRAGMENTS, max_size=60).map("".join)), train=st.booleans())
def test_fuzz_last_number_is_quick_and_consistent(text: str, train: bool) -> None:
    start = time.perf_counter()
    number = extract_last_number(text)
    reward = puzzle_reward(text, ARITH, train=train, format_reward=0.1, extraction="last_number")
    assert time.perf_counter() - start < 0.5
    assert reward in ((0.0, 0.1, 1.0) if train else (0.0, 1.0))
    assert (number is None) == (re.search(r"\d", text) is None)  # any decimal digit, as a reader reads it
    if number is not None and reward == 1.0:
        assert number == "-4"


MATH_FRAGMENTS = st.sampled_from(
    ["9^{", "9", "}", "!", "\\binom{", "10^{10}", "}{", "\\frac{", "(", ")", "x", "+", "-", "\\sqrt{", "1/2",
     "0.5", "\\infty", "\\left(", "\\right)", "^", "{", ",", "\\pi", "e", "10^{10^{10}}", " "]
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(inner=st.lists(MATH_FRAGMENTS, max_size=12).map("".join))
def test_fuzz_math_answers_end_in_bounded_time_from_a_thread(inner: str) -> None:
    from sec.tasks.math import VERIFY_TIMEOUT_S, verifier_pool

    assert verifier_pool().wait_ready(120)  # the bound holds once the pool has started (docs/rewards.md)
    record = {"task": "math", "answer": json.dumps({"generator": "math", "answer": "\\frac{1}{2}"})}
    out: list[tuple[float, float]] = []

    def score() -> None:
        reward = puzzle_reward(f"\\boxed{{{inner}}}", record, train=True, format_reward=0.0, extraction="boxed")
        out.append((reward, verifier_pool().last_timing()[1]))  # the check's own work

    thread = threading.Thread(target=score)
    thread.start()
    thread.join(30)
    assert out, f"no reward within 30 s for {inner!r}"
    (reward, seconds) = out[0]
    assert reward in (0.0, 1.0) and not seconds > VERIFY_TIMEOUT_S + 0.5, (inner, seconds)
