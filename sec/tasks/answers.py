"""Reading a completion's final answer (SEC.md §2): the last ``\\boxed{...}`` (the paper's rule,
"released code extracts the answer from the last ``\\boxed{...}``"), or the last number (the CPU
benchmark task ``arith``, ``task.answer_extraction: last_number``: the embedded 135M model rarely
writes ``\\boxed{}`` but often ends on the right number).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction

__all__ = [
    "ANSWER_EXTRACTIONS",
    "extract_answer",
    "extract_last_boxed",
    "extract_last_digits",
    "extract_last_number",
    "read_number",
]

_BOXED_RE = re.compile(r"\\boxed\s*\{")
_MINUS_SIGNS = str.maketrans({"\u2212": "-", "\ufe63": "-", "\uff0d": "-"})  # minus sign, small, fullwidth
_GROUP_SEP = r"(?:,|\{,\}|\\,|\u2009|\u202f)"  # 1,234  1{,}234  1\,234  thin / narrow no-break space


def _exponent(name: str) -> str:
    """``{k}`` or ``k`` after a ``^`` (a signed integer), captured as ``name`` / ``name_``."""
    return rf"(?:\{{\s*(?P<{name}>[+-]?\d+)\s*\}}|(?P<{name}_>[+-]?\d+))"


# a number as a reader reads it; a leading minus only where it cannot be a binary minus ("9-3" -> "3")
_NUMBER_RE = re.compile(
    r"(?P<sign>(?<![\w.])-)?"
    rf"(?P<int>\d{{1,3}}(?:{_GROUP_SEP}\d{{3}})+(?!\d)|\d+)(?P<frac>\.\d+)?"
    r"(?:[eE](?P<e>[+-]?\d+))?"
    r"(?:\s*(?:\\times|\\cdot|×|·|\*)\s*10\s*\^\s*" + _exponent("sci") + ")?"
    r"(?:\s*\^\s*" + _exponent("pow") + ")?"
)
#: largest power of ten / number of digits a number may have to be evaluated (bounds the time)
_MAX_DIGITS = 1000


def extract_last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` in ``text`` (braces matched with nesting).

    Only the braced form is recognised (``\\boxed{x}``, whitespace allowed before ``{``); the
    brace-less ``\\boxed x`` form is ignored. Escaped braces are not special (``\\{`` counts as ``{``).
    The content is returned verbatim (not stripped).

    Returns:
        The text between the braces of the last ``\\boxed{``; ``None`` when there is no ``\\boxed{``,
        when the last one's braces are unbalanced (e.g. a truncated completion), or when ``text`` is
        not a ``str``. Never raises.
    """
    if not isinstance(text, str):
        return None
    matches = list(_BOXED_RE.finditer(text))
    if not matches:
        return None
    start = matches[-1].end()
    depth = 1
    for i in range(start, len(text)):
        ch = text[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
    return None


def _canonical(value: Fraction) -> str:
    """``-4``, ``12.5``, ``0.0015``; a value without a finite decimal as ``p/q``."""
    if value.denominator == 1:
        return str(value.numerator)
    den, twos, fives = value.denominator, 0, 0
    while den % 2 == 0:
        den, twos = den // 2, twos + 1
    while den % 5 == 0:
        den, fives = den // 5, fives + 1
    if den != 1:
        return f"{value.numerator}/{value.denominator}"
    places = max(twos, fives)
    digits = str(abs(value.numerator) * 10**places // value.denominator).rjust(places + 1, "0")
    return ("-" if value < 0 else "") + (digits[:-places] + "." + digits[-places:]).rstrip("0").rstrip(".")


def _value(m: re.Match[str]) -> Fraction | None:
    """The value of one :data:`_NUMBER_RE` match; None when it would exceed :data:`_MAX_DIGITS`."""
    digits = re.sub(r"\D", "", m["int"])
    if len(digits) + len(m["frac"] or "") > _MAX_DIGITS:
        return None
    mantissa = Fraction(digits + (m["frac"] or ""))
    exponent = sum(int(x) for x in (m["e"], m["sci"] or m["sci_"]) if x)
    if abs(exponent) > _MAX_DIGITS:
        return None
    value = mantissa * Fraction(10) ** exponent
    power = m["pow"] or m["pow_"]
    if power:
        if m["frac"] or m["e"] or m["sci"] or m["sci_"] or abs(int(power)) * len(digits) > _MAX_DIGITS:
            return None  # 1.5^{2}, 2e3^{4}: not read; 9^{9999}: too large to write out
        if not value and int(power) < 0:
            return None  # 0^{-1}
        value = value ** int(power)
    return -value if m["sign"] else value


def read_number(text: str) -> str | None:
    """``text`` as one number in canonical form (see :func:`extract_last_number`), or None when
    it is not exactly one number (surrounding whitespace allowed)."""
    if not isinstance(text, str):
        return None
    m = _NUMBER_RE.fullmatch(text.strip().translate(_MINUS_SIGNS))
    value = _value(m) if m else None
    return None if value is None else _canonical(value)


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """The last non-overlapping match of ``pattern`` in ``text`` (scanning left to right, as
    ``finditer`` does), or None."""
    last = None
    for last in pattern.finditer(text):  # noqa: B007
        pass
    return last


def extract_last_number(text: str) -> str | None:
    """The last number written in ``text``, read as a reader reads it and returned in canonical
    form: ``"-4"``, ``"1234"``, ``"12.5"``, ``"0.0015"`` (a value without a finite decimal as
    ``"p/q"``).

    The rule (docs/rewards.md):

    * digits, optionally with a decimal part: ``12``, ``12.5``, ``-4.0`` (= ``-4``);
    * a minus sign belongs to the number only when it does not follow a word character or a dot,
      so ``"9-3"`` ends on ``3`` while ``"= -4"`` and ``"\\boxed{-4}"`` end on ``-4``; the Unicode
      minus signs (U+2212, U+FE63, U+FF0D) count as ``-``;
    * thousands separators join groups of exactly three digits: ``1,234``, ``1{,}234``,
      ``1\\,234``, thin spaces (``1,2,3`` is three numbers, the last ``3``);
    * scientific notation: ``1e3``, ``1.5E-3``, ``3 \\times 10^{2}`` (also ``\\cdot``, ``×``,
      ``·``, ``*``);
    * an integer power: ``10^{3}``, ``2^{10}`` (= ``1024``);
    * a value with more than 1,000 digits is not written out: the number's own text is returned.

    Returns:
        The number; ``None`` when ``text`` has no digit or is not a ``str``. Never raises; time
        linear in ``len(text)``.
    """
    if not isinstance(text, str):
        return None
    last = _last_match(_NUMBER_RE, text.translate(_MINUS_SIGNS))
    if last is None:
        return None
    value = _value(last)
    return last.group(0) if value is None else _canonical(value)


_DIGITS_RE = re.compile(r"[0-9]+")


def extract_last_digits(text: str) -> str | None:
    """The last run of ASCII digits in ``text`` exactly as written, leading zeros kept (``"x 0710"``
    -> ``"0710"``): the answer of a task whose answers are digit strings, not values
    (``arith_rev``'s reversed sums, where ``"01"`` and ``"1"`` differ).

    Returns:
        The digits; ``None`` when ``text`` has none or is not a ``str``. Never raises; time linear
        in ``len(text)``.
    """
    if not isinstance(text, str):
        return None
    last = _last_match(_DIGITS_RE, text)
    return None if last is None else last.group(0)


#: ``task.answer_extraction`` values: the paper's last ``\\boxed{}``, the last number (``arith``),
#: or the last run of digits as written (``arith_rev``)
ANSWER_EXTRACTIONS: dict[str, Callable[[str], str | None]] = {
    "boxed": extract_last_boxed,
    "last_number": extract_last_number,
    "last_digits": extract_last_digits,
}


def extract_answer(text: str, method: str = "boxed") -> str | None:
    """The final answer of a completion by ``method`` (a key of :data:`ANSWER_EXTRACTIONS`).

    Raises:
        ValueError: unknown method. Never raises on the text (``None`` = no answer).
    """
    if method not in ANSWER_EXTRACTIONS:
        raise ValueError(f"answer extraction must be one of {sorted(ANSWER_EXTRACTIONS)}, got {method!r}")
    return ANSWER_EXTRACTIONS[method](text)
