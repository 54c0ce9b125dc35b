"""The cheap path: canonical strings and exact numbers, no parser and no evaluation of model text.

Most right answers match the gold after normalising LaTeX spelling (``\\dfrac``, ``\\left``, ``\\text{}``,
math delimiters, units after a number, degrees, percent, thousands separators, trailing zeros, a leading ``x=``,
inequalities for intervals, derivative primes); numbers are then compared exactly as rationals, a repeating
decimal included. A decimal gold is its exact value, not a tolerance: ``0.54`` is not ``0.5``. Only what this
cannot decide goes to the symbolic checker.
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
_UNIT_ALIASES = {"meters": "m", "meter": "m", "centimeters": "cm", "centimeter": "cm", "kilometers": "km",
                 "kilometer": "km", "inches": "inch", "feet": "foot", "ft": "foot", "g": "gram", "grams": "gram"}
_TEXT = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
# A unit only after a number: a lone ``m`` or the ``g`` in ``\\frac{F}{g}`` is a variable.
_POWER = r"(?:\^\{?([23])\}?)?"  # cm^2 and cm^3 are different units
_UNITS = re.compile(
    rf"(?<=[\d}}])((?:\\,|\\ |\s)*(?:\\(?:text|mathrm|mbox)\{{\s*)?\b({UNIT_WORDS})\b{_POWER}\}}?{_POWER})\s*$"
)
_SPACES = re.compile(r"\\[,;:! ]|\\quad|\\qquad|~|\s+")
GREEK_LETTERS = ("alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta kappa lambda mu nu xi rho "
                 "sigma tau phi varphi chi psi omega Gamma Delta Theta Lambda Xi Sigma Phi Psi Omega").split()
_LETTER = r"(?:[a-zA-Z]|\\(?:" + "|".join(sorted(GREEK_LETTERS, key=len, reverse=True)) + r")(?![a-zA-Z]))"
_VAR_PREFIX = re.compile(rf"^({_LETTER}(?:_\{{?\w+\}}?)?)\s*(?:=|\\in\b)\s*(?!.*=)")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")  # no space after the commas: 81, 256 is a list
_DELIMITERS = re.compile(r"^\s*(?:\$\$(.*)\$\$|\$(.*)\$|\\\[(.*)\\\]|\\\((.*)\\\))\s*$", re.DOTALL)
_PERCENT = re.compile(r"\\?%\s*$")
_REPEATING = re.compile(r"^([+-]?)(\d*)\.(\d*)\\overline\{?(\d+)\}?$")
_REL = r"(<|>|\\le(?:q|qslant)?(?![a-z])|\\ge(?:q|qslant)?(?![a-z]))"
_BETWEEN = re.compile(rf"^(.+?)\s*{_REL}\s*({_LETTER})\s*{_REL}\s*(.+)$")
_ONE_SIDED = re.compile(rf"^({_LETTER})\s*{_REL}\s*(.+)$")
_DERIVATIVE = re.compile(r"\\frac\{d(?:\^\{?(\d)\}?)?([a-zA-Z])\}\{d[a-zA-Z](?:\^\{?\d\}?)?\}")
_CHOICE = re.compile(r"^\(?([A-E])\)?$")
_DECIMAL = re.compile(r"^([+-]?)(\d*)\.?(\d*)(?:e([+-]?\d+))?$", re.IGNORECASE)
_FRAC = re.compile(r"^([+-]?)\\frac\{([^{}]+)\}\{([^{}]+)\}$")
_MIXED = re.compile(r"^([+-]?)(\d+)\\frac\{(\d+)\}\{(\d+)\}$")
_FRAC_SHORT = re.compile(r"^([+-]?)\\frac(\d)(\d)$")
_SCI = re.compile(r"^(.+?)(?:\\times|\\cdot|\*)10\^\{?([+-]?\d+)\}?$")


def strip_delimiters(text: str) -> str:
    """``$x$``, ``$$x$$``, ``\\[x\\]`` and ``\\(x\\)`` -> ``x``: 90 training golds are stored in display math."""
    s = text.strip()
    for _ in range(2):
        m = _DELIMITERS.match(s)
        if not m:
            break
        s = next(g for g in m.groups() if g is not None).strip()
    return s


def units_of(text: str) -> tuple[str, ...]:
    """The unit words after a number at the end of ``text``, canonical (``5 meters`` -> ``('m',)``)."""
    s, units = strip_delimiters(text), []
    for _ in range(3):
        m = _UNITS.search(s)
        if not m:
            break
        word, power = m.group(2).lower(), m.group(3) or m.group(4) or ""
        word = _UNIT_ALIASES.get(word, word[:-1] if len(word) > 3 and word.endswith("s") else word)
        units.insert(0, word + power)
        s = s[: m.start()]
    return tuple(units)


_HEAD = re.compile(r"^([+-]?[\d.]+(?:(?:\\times|\\cdot)10\^\{?[+-]?\d+\}?)?)(.*)$")


def unit_tail(text: str) -> str | None:
    """Text-wrapped units after a leading number (``15 \\mbox{ cm}^2`` -> ``cm^2``), else None.

    Units the unit words do not cover (``kcal m^{-2} yr^{-1}``, ``cm^1``) are compared as written.
    """
    s = strip_delimiters(text)
    if not re.search(r"\\(?:text|mbox|mathrm)\s*\{", s):
        return None  # 2ab has variables after its number, not units
    for _ in range(3):
        s = _TEXT.sub(r"\1", s)
    s = _SPACES.sub("", s)
    m = _HEAD.match(s)
    return m.group(2) if m and re.match(r"[a-zA-Z]", m.group(2)) else None


def is_percent(text: str) -> bool:
    return bool(_PERCENT.search(strip_delimiters(text)))


def variable_prefix(text: str) -> str | None:
    """The variable an answer names (``x_{1} = 2`` -> ``x_1``, ``1 < y < 2`` -> ``y``), or None."""
    s = strip_delimiters(text)
    m = _VAR_PREFIX.match(s)
    if m:
        return re.sub(r"[{}\s]", "", m.group(1))
    m = _ONE_SIDED.match(s)
    if m:
        return m.group(1)
    m = _BETWEEN.match(s)
    return m.group(3) if m else None


def _interval(s: str) -> str:
    """``1 \\le x < 2`` -> ``[1,2)``, ``x > 3`` -> ``(3,\\infty)``: the inequality spelling of an interval."""
    m = _BETWEEN.match(s)
    if m and m.group(2)[0] in "<\\" and m.group(4)[0] in "<\\" and "g" not in m.group(2) + m.group(4):
        low, high = m.group(1), m.group(5)
        return ("[" if "le" in m.group(2) else "(") + f"{low},{high}" + ("]" if "le" in m.group(4) else ")")
    m = _ONE_SIDED.match(s)
    if m:
        rel, bound = m.group(2), m.group(3)
        closed = "le" in rel or "ge" in rel
        if rel == ">" or "ge" in rel:
            return ("[" if closed else "(") + f"{bound},\\infty)"
        return f"(-\\infty,{bound}" + ("]" if closed else ")")
    return s


_TRIG_DEGREES = re.compile(
    r"(\\(?:sin|cos|tan|sec|csc|cot)(?:\s*\^\s*(?:\d|\{\d+\}))?)\s*(\()?\s*(\d+(?:\.\d+)?)\s*(?:\^\s*\{?\s*\\circ\s*\}?|°|\\degree)\s*(?(2)\))"
)


def trig_degrees_as_radians(text: str) -> str:
    """``\\sin 30^\\circ`` -> ``\\sin{\\frac{30\\pi}{180}}``: inside a trigonometric function a degree is an angle.

    Elsewhere the degree sign is only a unit and is dropped (``30^\\circ`` is the gold ``30``).
    """
    return _TRIG_DEGREES.sub(lambda m: f"{m.group(1)}{{\\frac{{{m.group(3)}\\pi}}{{180}}}}", text)


def normalize_answer(text: str, thousands: bool = True) -> str:
    """A canonical spelling of an answer string; equal strings mean equal answers.

    ``thousands=False`` keeps ``81,256`` a list of two numbers (when the other side is a list).
    """
    s = strip_delimiters(text)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\left", "").replace("\\right", "")
    s = s.replace("\\displaystyle", "").replace("{,}", "").replace("\\$", "").replace("\\!", "")
    s = trig_degrees_as_radians(s)
    s = re.sub(r"\^\s*\{?\\circ\}?|°|\\degree", "", s)
    s = _PERCENT.sub("", s)
    for _ in range(3):
        s = _UNITS.sub("", s)
    for _ in range(3):  # nested \text{\textbf{A}}
        s = _TEXT.sub(r"\1", s)
    if thousands and _THOUSANDS.match(s.strip()):
        s = s.replace(",", "")
    s = s.strip()
    if not _ONE_SIDED.match(s):  # x > 3 is an interval, x = 3 is 3
        s = _VAR_PREFIX.sub("", s)
    s = _interval(s)
    s = _SPACES.sub("", s)
    s = s.replace("\\geq", "\\ge").replace("\\leq", "\\le").replace("\\prime", "'").replace("^{'}", "'")
    s = s.replace("^{''}", "''")
    s = _DERIVATIVE.sub(lambda m: m.group(2) + "'" * int(m.group(1) or 1), s)
    s = re.sub(r"_\{(\w)\}", r"_\1", s)
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
    return _VAR_PREFIX.sub("", strip_delimiters(text))


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
    repeating = _REPEATING.match(s)
    if repeating:  # 0.1\overline{6} = 0.1 + 6 / (9 * 10)
        sign, whole, fixed, period = repeating.groups()
        if len(whole + fixed + period) > MAX_NUMBER_DIGITS:
            return None
        value = Fraction(int(whole or "0") * 10 ** len(fixed) + int(fixed or "0"), 10 ** len(fixed))
        value += Fraction(int(period), (10 ** len(period) - 1) * 10 ** len(fixed))
        return -value if sign == "-" else value
    value = _decimal(s)
    if value is not None:
        return value
    mixed = _MIXED.match(s)
    if mixed:  # 2\\frac{1}{2} is 5/2 by convention
        sign, whole, num, den = mixed.groups()
        if int(den) == 0 or len(whole + num + den) > MAX_NUMBER_DIGITS:
            return None
        value = int(whole) + Fraction(int(num), int(den))
        return -value if sign == "-" else value
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


def numbers_equal(answer: str, gold: str, answer_percent: bool = False, gold_percent: bool = False) -> bool | None:
    """True/False when both sides are plain numbers, None when either is not.

    Exact comparison: a gold written as a decimal is its exact value, so ``0.54`` and ``0.46`` are not ``0.5``
    and ``1/3`` is not ``0.33`` (the gold's written precision is not a tolerance a policy may exploit). A side
    written with a percent sign also matches as a fraction (``25\\%`` is ``1/4``).
    """
    a, g = parse_number(answer), parse_number(gold)
    if a is None or g is None:
        return None
    if answer_percent != gold_percent:
        return a == g or (a / 100 == g if answer_percent else a == g / 100)
    return a == g
