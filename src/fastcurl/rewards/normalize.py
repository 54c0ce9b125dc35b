"""The cheap path: canonical strings and exact numbers, no parser and no evaluation of model text.

Most right answers match the gold after normalising LaTeX spelling (``\\dfrac``, ``\\left``, ``\\text{}``,
units, degrees, percent, thousands separators, trailing zeros, a leading ``x=``); numbers are then compared
exactly as rationals. Only what this cannot decide goes to the symbolic checker.
"""

from __future__ import annotations

import re
from fractions import Fraction

MAX_NUMBER_DIGITS = 400  # beyond this a "number" is an attack or a mistake, and exact arithmetic is not cheap

UNIT_WORDS = (
    "degrees?|cm|mm|km|m|meters?|centimeters?|kilometers?|inches|inch|feet|foot|ft|miles?|units?|square|sq|"
    "cubic|hours?|minutes?|seconds?|days?|weeks?|years?|dollars?|cents?|pounds?|kg|grams?|g|liters?|ml|mph|"
    "percent|points?|ways?|students?|people|times|per"
)
_TEXT = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_UNITS = re.compile(rf"(?:\\,|\s)*(?:\\text\{{\s*)?\b(?:{UNIT_WORDS})\b(?:\^?\{{?[23]\}}?)?\}}?\s*$")
_SPACES = re.compile(r"\\[,;:! ]|\\quad|\\qquad|~|\s+")
_VAR_PREFIX = re.compile(r"^[a-zA-Z](?:_\{?\w+\}?)?\s*=\s*(?!.*=)")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_CHOICE = re.compile(r"^\(?([A-E])\)?$")
_DECIMAL = re.compile(r"^([+-]?)(\d*)\.?(\d*)(?:e([+-]?\d+))?$", re.IGNORECASE)
_FRAC = re.compile(r"^([+-]?)\\frac\{([^{}]+)\}\{([^{}]+)\}$")
_FRAC_SHORT = re.compile(r"^([+-]?)\\frac(\d)(\d)$")
_SCI = re.compile(r"^(.+?)(?:\\times|\\cdot|\*)10\^\{?([+-]?\d+)\}?$")


def normalize_answer(text: str) -> str:
    """A canonical spelling of an answer string; equal strings mean equal answers."""
    s = text.strip().strip("$").strip()
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\left", "").replace("\\right", "")
    s = s.replace("\\displaystyle", "").replace("{,}", "").replace("\\$", "").replace("\\!", "")
    s = re.sub(r"\^\s*\{?\\circ\}?|°|\\degree", "", s)
    s = s.replace("\\%", "").replace("%", "")
    for _ in range(3):
        s = _UNITS.sub("", s)
    for _ in range(3):  # nested \text{\textbf{A}}
        s = _TEXT.sub(r"\1", s)
    s = _SPACES.sub("", s)
    s = _VAR_PREFIX.sub("", s)
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    choice = _CHOICE.match(s)
    if choice:
        return choice.group(1)
    number = parse_number(s)
    if number is not None and number.denominator == 1:
        return str(number.numerator)
    if s.startswith("{") and s.endswith("}") and _balanced(s[1:-1]):
        s = s[1:-1]
    return s


def strip_variable_prefix(text: str) -> str:
    """``x = 5`` -> ``5``; an equation with two ``=`` or none is left alone."""
    return _VAR_PREFIX.sub("", text.strip().strip("$").strip())


def _balanced(s: str) -> bool:
    depth = 0
    for c in s:
        depth += (c == "{") - (c == "}")
        if depth < 0:
            return False
    return depth == 0


def _decimal(s: str) -> Fraction | None:
    m = _DECIMAL.match(s)
    if not m or not (m.group(2) or m.group(3)):
        return None
    sign, whole, frac, exp = m.groups()
    if len(whole) + len(frac) > MAX_NUMBER_DIGITS or (exp and abs(int(exp)) > MAX_NUMBER_DIGITS):
        return None
    value = Fraction(int(whole or "0") * 10 ** len(frac) + int(frac or "0"), 10 ** len(frac))
    if exp:
        value *= Fraction(10) ** int(exp)
    return -value if sign == "-" else value


def parse_number(s: str) -> Fraction | None:
    """An exact rational for integers, decimals, ``a/b``, ``\\frac{a}{b}`` and ``a \\times 10^{b}``; else None."""
    s = s.replace(" ", "")
    if not s or len(s) > 2 * MAX_NUMBER_DIGITS:
        return None
    value = _decimal(s)
    if value is not None:
        return value
    sci = _SCI.match(s)
    if sci:
        mantissa, exp = parse_number(sci.group(1)), int(sci.group(2))
        if mantissa is None or abs(exp) > MAX_NUMBER_DIGITS:
            return None
        return mantissa * Fraction(10) ** exp
    m = _FRAC.match(s) or _FRAC_SHORT.match(s)
    if m:
        sign, num, den = m.groups()
    elif s.count("/") == 1:
        num, den = s.split("/")
        sign = ""
    else:
        return None
    n, d = _decimal(num), _decimal(den)
    if n is None or d is None or d == 0:
        return None
    value = n / d
    return -value if sign == "-" else value


def decimal_places(s: str) -> int | None:
    """Digits after the point when ``s`` is written as a plain decimal (``0.33`` -> 2), else None."""
    m = _DECIMAL.match(s.replace(" ", ""))
    if not m or m.group(4) or not m.group(3):
        return None
    return len(m.group(3))


def numbers_equal(answer: str, gold: str) -> bool | None:
    """True/False when both sides are plain numbers, None when either is not.

    Exact comparison, except that a gold written as a decimal (Minerva's ``9.6``) accepts any answer that
    rounds to it at the gold's precision: the gold is the approximation, not the answer. ``0.33`` is therefore
    not ``1/3``, while ``1/3`` is ``0.33``.
    """
    a, g = parse_number(answer), parse_number(gold)
    if a is None or g is None:
        return None
    if a == g:
        return True
    places = decimal_places(gold)
    if places is not None and places > 0:
        return round(a, places) == g
    return False
