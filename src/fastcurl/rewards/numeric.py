"""A numeric fingerprint: evaluate two LaTeX answers at random points and compare the values.

Most answers a symbolic check would see are arithmetic in a small LaTeX subset (numbers, ``+ - * /``, powers,
``\\frac``, ``\\sqrt``, ``\\pi``, ``i``, ``e``, a few functions, letters as variables, tuples and lists). Our own
recursive-descent parser reads that subset into complex values; nothing is handed to Python's ``eval`` or
sympy, so model text stays inert. Two expressions that differ at a random point are different; two that agree
at every one of several random points are equal (the chance that distinct expressions of this kind agree at
random points is negligible). Anything outside the subset, or a value that is not finite, returns None and
goes to the symbolic check.

Exact where it can be: a rational expression (``2^{64}-1``, ``20!+1``, ``(x+10^5)^2-2\\cdot 10^5x-10^{10}``)
is evaluated in exact rationals, variables at random integer points of both signs, so a difference of one is
seen and a polynomial identity is decided exactly (two different rational functions agree at a random point
with a chance of degree / 2,000,000 at points no answer can be built for). Floats (``\\pi``, functions, irrational roots) may reject but accept only
where float error cannot hide a difference: a value beyond 2^40 or below 10^-6, a long decimal or a large literal
hands over to the symbolic check, and a gap is a difference only when it is larger than the rounding error the
largest intermediate value could carry. An expression with a branch or a fold (a root, a fractional or variable
power, a logarithm, an inverse trigonometric function, an absolute value or a conjugate of a variable) is never
accepted here: ``\\sqrt{(x+3)^2}`` and
``x+3`` agree at every point a few samples would try, and only the symbolic check may call them equal.
"""

from __future__ import annotations

import cmath
import math
import random
import re
import secrets
from collections.abc import Callable
from fractions import Fraction
from typing import Union

from .normalize import GREEK_LETTERS, trig_degrees_as_radians

MAX_CHARS = 400
MAX_DEPTH = 40
NUM_POINTS = 3
EQUAL_TOL = 1e-12  # relative; floating-point error of these short expressions stays far below it
DIFFERENT_TOL = 1e-9  # relative; between the two tolerances the symbolic check decides
TINY = 1e-8  # against an exact zero, a value this small could be float noise
SAFE_RANGE = (1e-6, 2.0**40)  # magnitudes where a 1e-12 relative agreement cannot hide an integer or a small term
MAX_LITERAL = 10**6  # larger integer literals could hide a difference below the float tolerance
MAX_EXACT_BITS = 100_000  # exact rationals beyond this are an attack; the symbolic check's deadline handles them
EXACT_POINT_RANGE = 10**6  # variables take integer values in [-R, R] (not 0) at the exact points
FLOAT_NOISE = 1e-14  # relative to the largest intermediate magnitude: the rounding error a short expression can carry

_UNSUPPORTED = ("infty", "cdots", "ldots", "dots", "vdots", "text", "mathrm", "textbf", "operatorname")
_FUNCTIONS: dict[str, Callable[[complex], complex]] = {
    "sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan, "ln": cmath.log, "log": cmath.log, "exp": cmath.exp,
    "sinh": cmath.sinh, "cosh": cmath.cosh, "tanh": cmath.tanh, "arcsin": cmath.asin, "arccos": cmath.acos,
    "arctan": cmath.atan, "sec": lambda z: 1 / cmath.cos(z), "csc": lambda z: 1 / cmath.sin(z),
    "cot": lambda z: 1 / cmath.tan(z),
}
_BRANCHED = {"ln", "log", "arcsin", "arccos", "arctan"}  # of a variable: a branch cut, not one function everywhere
_COMMANDS = sorted(
    ["frac", "dfrac", "tfrac", "binom", "sqrt", "overline", "pi", "cdot", "times", *_UNSUPPORTED, *GREEK_LETTERS, *_FUNCTIONS],
    key=len,
    reverse=True,
)
_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.?\d*|\.\d+)|\\(?P<cmd>" + "|".join(_COMMANDS) + r")(?![A-Za-z])"  # \cosh is not \cos h
    r"|(?P<ch>[A-Za-z]|[-+*/^(){}\[\]_!,|]))"
)
_STRIP = re.compile(r"\\left|\\right|\\!|\\,|\\;|\\:|\\ |\\displaystyle|\$")


class _Unsupported(Exception):
    pass


class _Inexact(Exception):
    """Raised in exact mode by anything that is not a rational: a variable, pi, a root, a function."""


Value = Union[complex, Fraction]


class _Env:
    """Where an expression is evaluated: exactly (rationals, no variables) or at a point (complex floats).

    At a point it records the smallest and largest magnitude any step produced, so the caller knows whether
    float agreement means anything.
    """

    def __init__(self, values: dict[str, complex] | dict[str, Fraction] | None = None, exact: bool = False) -> None:
        self.exact = values is None or exact
        self.values = values or {}
        self.low, self.high = math.inf, 0.0

    def note(self, value: Value) -> Value:
        if not self.exact:
            size = abs(value)
            if size:
                self.low, self.high = min(self.low, size), max(self.high, size)
        return value

    def number(self, text: str) -> Value:
        return self.note(Fraction(text) if self.exact else complex(float(text)))

    def inexact(self, value: complex) -> complex:
        if self.exact:
            raise _Inexact
        return self.note(value)


Node = Callable[[_Env], Value]


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise _Unsupported(text[pos : pos + 10])
        pos = m.end()
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
    return tokens


class _Parser:
    """expr := term (('+'|'-') term)*; term := unary ((op | implicit) unary)*; unary := [+-] unary | power."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0
        self.symbols: set[str] = set()
        self.ambiguous = False  # f(x): a function applied, or f times x? Only the symbolic check may say.
        self.imprecise = False  # a literal a float cannot hold exactly enough to accept on agreement
        self.branched = False  # a root, fractional power, log or inverse function of a variable
        self.symbol_uses = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise _Unsupported(f"expected {value}")
        self.pos += 1
        return token

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Unsupported("too deep")

    def expr(self) -> Node:
        self.enter()
        node = self.term()
        while (token := self.peek()) and token[1] in "+-" and token[0] == "ch":
            op = self.take()[1]
            right = self.term()
            node = (lambda a, b: lambda env: env.note(a(env) + b(env)))(node, right) if op == "+" else (
                lambda a, b: lambda env: env.note(a(env) - b(env)))(node, right)
        self.depth -= 1
        return node

    def starts_atom(self, token: tuple[str, str] | None) -> bool:
        if token is None:
            return False
        kind, value = token
        return kind in ("num", "cmd") and value not in ("cdot", "times") or (kind == "ch" and (
            value.isalpha() or value in "({"))

    def term(self) -> Node:
        node = self.unary()
        while True:
            token = self.peek()
            if token and (token[1] in ("*", "/") and token[0] == "ch" or token[1] in ("cdot", "times")):
                op = self.take()[1]
                right = self.unary()
                if op == "/":
                    node = (lambda a, b: lambda env: env.note(a(env) / b(env)))(node, right)
                else:
                    node = (lambda a, b: lambda env: env.note(a(env) * b(env)))(node, right)
            elif self.starts_atom(token):
                right = self.power()
                node = (lambda a, b: lambda env: env.note(a(env) * b(env)))(node, right)
            else:
                return node

    def unary(self) -> Node:
        token = self.peek()
        if token and token[0] == "ch" and token[1] in "+-":
            self.take()
            self.enter()
            inner = self.unary()
            self.depth -= 1
            return inner if token[1] == "+" else (lambda a: lambda env: -a(env))(inner)
        return self.power()

    def power(self) -> Node:
        uses = self.symbol_uses
        base = self.atom()
        token = self.peek()
        if token and token[1] == "!":
            self.take()
            base = (lambda a: lambda env: env.note(_factorial(a(env))))(base)
            token = self.peek()
        if token and token[1] == "^":
            self.take()
            base_varies, uses = self.symbol_uses > uses, self.symbol_uses
            exponent = self.group_or_single()
            if self.symbol_uses > uses or (base_varies and not _is_integer_constant(exponent)):
                self.branched = True  # x^{1/2}, 2^x: the principal branch is a choice
            return (lambda a, b: lambda env: env.note(_pow(a(env), b(env))))(base, exponent)
        return base

    def function_argument(self) -> Node:
        """``\\sin 2x`` is sin(2x), ``\\sin x \\cos x`` is sin(x)cos(x): a bare argument runs to the next operator."""
        token = self.peek()
        if token and token[1] in "({":
            return self.atom()
        argument = self.power()
        while self.starts_atom(token := self.peek()) and not (token[0] == "cmd" and token[1] in _FUNCTIONS):
            argument = (lambda a, b: lambda env: env.note(a(env) * b(env)))(argument, self.power())
        if (token := self.peek()) and token[1] == "/":
            self.ambiguous = True  # \sin x/2: sin(x)/2 or sin(x/2)? Only the symbolic check may say.
        return argument

    def group_or_single(self) -> Node:
        token = self.peek()
        if token and token[1] == "{":
            return self.group()
        if token and token[0] == "num":  # x^23 means x^2 * 3 in LaTeX: one digit binds
            self.take()
            digits = token[1]
            if len(digits) > 1:
                self.tokens.insert(self.pos, ("num", digits[1:]))
            return lambda env: env.number(digits[0])
        return self.atom()

    def group(self) -> Node:
        self.take("{")
        inner = self.expr()
        self.take("}")
        return inner

    def atom(self) -> Node:
        self.enter()
        kind, value = self.take()
        self.depth -= 1
        if kind == "num":
            self.imprecise |= len(value.replace(".", "").lstrip("0")) > 9 or float(value) > MAX_LITERAL
            return lambda env: env.number(value)
        if kind == "cmd":
            if value in ("frac", "dfrac", "tfrac"):
                num, den = self.group_or_single(), self.group_or_single()
                return lambda env: env.note(num(env) / den(env))
            if value == "binom":
                top, bottom = self.group_or_single(), self.group_or_single()
                return lambda env: env.note(_binom(top(env), bottom(env)))
            if value == "sqrt":
                index = None
                if self.peek() and self.peek()[1] == "[":
                    self.take("[")
                    index = self.expr()
                    self.take("]")
                uses = self.symbol_uses
                radicand = self.group_or_single()
                self.branched |= self.symbol_uses > uses
                if index is None:
                    return lambda env: _sqrt(env, radicand(env))
                return lambda env: env.inexact(_pow(complex(radicand(env)), 1 / complex(index(env))))
            if value == "overline":  # the complex conjugate; 0.\\overline{3} is a repeating decimal, not ours
                if self.pos >= 2 and self.tokens[self.pos - 2][0] == "num":
                    raise _Unsupported("repeating decimal")
                uses = self.symbol_uses
                inner = self.group_or_single()
                self.branched |= self.symbol_uses > uses  # at real sample points a conjugate is invisible
                return lambda env: env.inexact(complex(inner(env)).conjugate())
            if value == "pi":
                return lambda env: env.inexact(complex(math.pi))
            if value in _FUNCTIONS:
                function = _FUNCTIONS[value]
                exponent = None
                if self.peek() and self.peek()[1] == "^":  # \sin^2 x; \sin^{-1} x would mean arcsin
                    self.take()
                    exponent = self.group_or_single()
                    if not _is_integer_constant(exponent) or exponent(_Env()) < 1:
                        raise _Unsupported("function power")
                uses = self.symbol_uses
                argument = self.function_argument()
                self.branched |= value in _BRANCHED and self.symbol_uses > uses
                if exponent is None:
                    return lambda env: env.inexact(function(complex(argument(env))))
                return lambda env: env.inexact(_pow(function(complex(argument(env))), complex(exponent(env))))
            if value in GREEK_LETTERS:
                return self.symbol("\\" + value)
            raise _Unsupported(value)  # \infty, \ldots, \text, ...
        if value == "(":
            inner = self.expr()
            self.take(")")
            return inner
        if value == "|":  # |3+4i| is 5; x|y (divides) stops at the bar and is trailing input
            uses = self.symbol_uses
            inner = self.expr()
            self.take("|")
            self.branched |= self.symbol_uses > uses  # |x| is x wherever the samples are positive
            return lambda env: env.note(abs(inner(env)))
        if value == "{":
            inner = self.expr()
            self.take("}")
            return inner
        if value.isalpha():
            if value == "i":
                return lambda env: env.inexact(1j)
            if value == "e":
                return lambda env: env.inexact(complex(math.e))
            return self.symbol(value)
        raise _Unsupported(value)

    def symbol(self, name: str) -> Node:
        if self.peek() and self.peek()[1] == "_":
            self.take("_")
            start = self.pos
            if self.take()[1] == "{":
                depth = 1
                while depth:
                    depth += {"{": 1, "}": -1}.get(self.take()[1], 0)
            name += "_" + "".join(v for _, v in self.tokens[start : self.pos])
        if self.peek() and self.peek()[1] == "(":
            self.ambiguous = True
        self.symbols.add(name)
        self.symbol_uses += 1
        return lambda env: env.note(env.values[name]) if name in env.values else env.inexact(0j)


def _is_integer_constant(node: Node) -> bool:
    try:
        value = node(_Env())
    except (_Inexact, _Unsupported, ArithmeticError, ValueError):
        return False
    return isinstance(value, Fraction) and value.denominator == 1


def _pow(base: Value, exponent: Value) -> Value:
    if isinstance(base, Fraction) and isinstance(exponent, Fraction):
        if exponent.denominator != 1:
            raise _Inexact
        n = exponent.numerator
        if abs(n) * max(abs(base.numerator).bit_length(), abs(base.denominator).bit_length()) > MAX_EXACT_BITS:
            raise _Inexact
        if base == 0 and n < 0:
            raise ZeroDivisionError
        return base**n
    base, exponent = complex(base), complex(exponent)
    if abs(exponent) > 1000 or (abs(base) > 1e6 and abs(exponent) > 50):
        raise OverflowError
    if exponent == int(exponent.real) and exponent.imag == 0 and base.imag == 0:
        return complex(base.real ** int(exponent.real)) if base != 0 or exponent.real >= 0 else complex("nan")
    return base**exponent


def _sqrt(env: _Env, value: Value) -> Value:
    """A rational root stays exact (``\\sqrt{4}`` is 2); the principal root of a negative is ``i`` times it."""
    if isinstance(value, Fraction):
        if value >= 0:
            num, den = math.isqrt(value.numerator), math.isqrt(value.denominator)
            if num * num == value.numerator and den * den == value.denominator:
                return Fraction(num, den)
        raise _Inexact
    value = complex(value.real + 0.0, value.imag + 0.0)  # -0.0 imaginary part would pick the other root
    return env.note(cmath.sqrt(value))


def _binom(n: Value, k: Value) -> Value:
    """Exact for whole numbers (the only kind a gold holds); anything else is for the symbolic check."""
    if isinstance(n, Fraction) and isinstance(k, Fraction) and n.denominator == k.denominator == 1:
        if 0 <= n.numerator <= 100_000:
            return Fraction(math.comb(n.numerator, k.numerator)) if k >= 0 else Fraction(0)
    raise _Unsupported("binom")


def _factorial(value: Value) -> Value:
    if isinstance(value, Fraction):
        if value.denominator != 1 or not 0 <= value <= 2000:
            raise _Inexact
        return Fraction(math.factorial(value.numerator))
    if value.imag or value.real != int(value.real) or not 0 <= value.real <= 170:
        raise _Unsupported("factorial")
    return complex(math.factorial(int(value.real)))


def split_top_level(text: str) -> tuple[str, list[str]]:
    """('tuple'|'list'|'single', items): parenthesised comma lists are ordered, bare ones are not."""
    depth, items, current = 0, [], []
    for ch in text:
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        if ch == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    items.append("".join(current))
    if len(items) > 1:
        return "list", items
    inner = text.strip()
    if inner.startswith("(") and inner.endswith(")"):
        kind, parts = split_top_level(inner[1:-1])
        if kind == "list":
            return "tuple", parts
    if inner.startswith("\\{") and inner.endswith("\\}"):
        kind, parts = split_top_level(inner[2:-2])
        return "list", parts
    return "single", [text]


class _Item:
    """One side (or one list item) evaluated: exactly when it can be, else at the shared random points.

    ``exact`` holds a rational per exact point (the same value at each when there are no variables); ``positive``
    and ``mixed`` hold complex values at the float points with every variable positive, and with random signs.
    """

    def __init__(self, text: str, points: _Points) -> None:
        node, self.symbols, imprecise, self.branched = _compile(text)
        self.exact: list[Fraction] | None = None
        self.undefined = False  # a division by zero: equal to nothing defined
        self.safe, self.noise, self.mixed = True, 0.0, None
        if not self.symbols:
            try:
                self.exact = [node(_Env())] * NUM_POINTS  # type: ignore[list-item]
            except _Inexact:
                pass
            except ZeroDivisionError:
                self.undefined = True
                return
        elif not self.branched:
            try:
                self.exact = [node(_Env(p, exact=True)) for p in points.exact]  # type: ignore[misc]
            except (_Inexact, _Unsupported, ArithmeticError, ValueError):
                pass  # a zero denominator at a random integer point is the float points' business
        envs = [_Env(p) for p in points.positive]
        try:
            self.positive = [_finite(node(env)) for env in envs]
        except ZeroDivisionError:
            self.undefined = True
            return
        except (_Unsupported, ArithmeticError, ValueError):
            if self.exact is None:
                raise
            self.positive = [_finite(value) for value in self.exact]  # \\binom{24}{12}: exact only
            envs = []
        self.safe = not imprecise and all(SAFE_RANGE[0] <= e.low and e.high <= SAFE_RANGE[1] for e in envs
                                          if e.high)
        self.noise = FLOAT_NOISE * max((e.high for e in envs), default=0.0)
        if not self.symbols:
            self.mixed = self.positive
            return
        try:
            self.mixed = [_finite(node(_Env(p))) for p in points.mixed]
        except (_Unsupported, ArithmeticError, ValueError):
            pass


def _finite(value: Value) -> complex:
    value = complex(value)
    if not (math.isfinite(value.real) and math.isfinite(value.imag)):
        raise ValueError("not finite")
    return value


def _compile(text: str) -> tuple[Node, set[str], bool, bool]:
    parser = _Parser(_tokenize(text))
    node = parser.expr()
    if parser.peek() is not None or parser.ambiguous:
        raise _Unsupported("trailing input or function notation")
    return node, parser.symbols, parser.imprecise, parser.branched


_SEED = secrets.token_hex(16)


class _Points:
    """The same random assignment for every symbol on both sides, seeded by the symbol names (the exact points also per process).

    ``exact``: integers up to EXACT_POINT_RANGE, all positive, all negative, then random signs; ``positive``: floats in [0.5, 2.5], small enough
    that float agreement means something; ``mixed``: the same magnitudes with random signs per variable, so that
    ``\\sqrt{x^2y^2}`` and ``xy`` part somewhere.
    """

    def __init__(self, texts: list[str]) -> None:
        names: set[str] = set()
        for text in texts:
            names |= _compile(text)[1]
        # Exact agreement accepts, so its points are drawn per process: no polynomial can be built to vanish there.
        secret = random.Random(_SEED + ",".join(sorted(names)))
        signs = [lambda: 1, lambda: -1] + [lambda: secret.choice((-1, 1))] * (NUM_POINTS - 2)
        self.exact = [{name: Fraction(sign() * secret.randint(1, EXACT_POINT_RANGE)) for name in sorted(names)}
                      for sign in signs]
        rng = random.Random(",".join(sorted(names)))
        self.positive = [{name: complex(rng.uniform(0.5, 2.5)) for name in sorted(names)} for _ in range(NUM_POINTS)]
        self.mixed = [{name: complex(rng.choice((-1, 1)) * rng.uniform(0.5, 2.5)) for name in sorted(names)}
                      for _ in range(NUM_POINTS)]


def _compare(a: list[complex], b: list[complex], noise: float = 0.0) -> bool | None:
    """True when equal to float precision everywhere, False when some gap exceeds what rounding could make."""
    equal = True
    for x, y in zip(a, b):
        scale = max(abs(x), abs(y))
        if min(abs(x), abs(y)) == 0 and scale < TINY:
            if scale == 0:
                continue
            return None  # an exact zero against float noise
        gap = abs(x - y)
        if gap > max(DIFFERENT_TOL * scale, 1000 * noise):
            return False
        equal &= gap <= EQUAL_TOL * scale and noise <= EQUAL_TOL * scale
    return True if equal else None


def _compare_items(a: _Item, g: _Item) -> bool | None:
    """Exact when both sides are rationals at the exact points; else floats, trusted only in the safe range.

    Floats accept only an expression without a branch that also agrees at the mixed-sign points.
    """
    if a.undefined or g.undefined:
        return None if a.undefined and g.undefined else False
    if a.exact is not None and g.exact is not None:
        return a.exact == g.exact
    noise = max(a.noise, g.noise)
    if not (a.safe and g.safe):
        return None
    verdict = _compare(a.positive, g.positive, noise)
    if verdict and (a.symbols or g.symbols):
        if a.branched or g.branched:
            return None
        if a.mixed is None or g.mixed is None or _compare(a.mixed, g.mixed, noise) is not True:
            return None
    return verdict


_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{3,}")
_MIXED_NUMBER = re.compile(r"\d\s*\\[dt]?frac")  # 2\frac{1}{2} is 5/2 by convention, not 2 * 1/2
_DECIMAL_LITERAL = re.compile(r"(?<![\d.])(\d*)\.(\d+)(?![\d.])")


def decimals_as_fractions(text: str) -> str:
    """``0.54x`` -> ``{\\frac{54}{100}}x``: a decimal is its exact value, for parsers that round floats."""

    def fraction(m: re.Match) -> str:
        whole, digits = m.group(1) or "0", m.group(2)
        if len(m.group(0)) > 40:
            return m.group(0)
        return f"{{\\frac{{{int(whole) * 10 ** len(digits) + int(digits)}}}{{{10 ** len(digits)}}}}}"

    return _DECIMAL_LITERAL.sub(fraction, text)


_AND = re.compile(r"\s*(?:\\text\{\s*and\s*\}|\band\b)\s*")  # 3 and 5: a list, not a*n*d
_INTERVAL = re.compile(r"^([\[(])([^,]+),([^,]+)([\])])$")
_INFINITY = {"\\infty": "+", "+\\infty": "+", "-\\infty": "-"}


def interval_equal(answer: str, gold: str) -> bool | None:
    """Two intervals (normalised, no spaces): ends must match in kind, endpoints in value."""
    a, g = _INTERVAL.match(answer), _INTERVAL.match(gold)
    if not (a and g) or not any(c in answer + gold for c in "[]") and "\\infty" not in answer + gold:
        return None
    if a.group(1) != g.group(1) or a.group(4) != g.group(4):
        return False
    verdicts = []
    for end_a, end_g in ((a.group(2), g.group(2)), (a.group(3), g.group(3))):
        if end_a in _INFINITY or end_g in _INFINITY:
            verdicts.append(_INFINITY.get(end_a) == _INFINITY.get(end_g))
        else:
            verdicts.append(end_a == end_g or fingerprint_equal(end_a, end_g))
    if False in verdicts:
        return False
    return True if all(verdicts) else None


def _is_set(text: str) -> bool:
    return text.strip().startswith("\\{")


def fingerprint_equal(answer: str, gold: str) -> bool | None:
    """True/False when both sides are in the supported subset and evaluate; None when undecided.

    Undecided by design: equations and inequalities, words (``east`` is not ``e*a*s*t``), function notation, and
    float agreement that float error could fake. A set is never a tuple (``\\{1,2\\}`` is not ``(1,2)``).
    """
    answer, gold = _AND.sub(", ", answer), _AND.sub(", ", gold)
    answer, gold = trig_degrees_as_radians(answer), trig_degrees_as_radians(gold)
    both = answer + " " + gold
    if len(answer) > MAX_CHARS or len(gold) > MAX_CHARS or any(c in both for c in "=<>") or _WORD.search(both):
        return None
    if _MIXED_NUMBER.search(both):
        return None
    answer, gold = _STRIP.sub("", answer), _STRIP.sub("", gold)
    try:
        kind_a, items_a = split_top_level(answer)
        kind_g, items_g = split_top_level(gold)
        if {kind_a, kind_g} == {"list", "tuple"}:
            return False if _is_set(answer) or _is_set(gold) else None
        if kind_a != kind_g and "single" not in (kind_a, kind_g):
            return None
        points = _Points(items_a + items_g)
        values_a = [_Item(item, points) for item in items_a]
        values_g = [_Item(item, points) for item in items_g]
    except (_Unsupported, ArithmeticError, ValueError, RecursionError, KeyError, IndexError):
        return None
    if len(values_a) != len(values_g):
        return False  # a number is not a list, a list of three is not a list of two
    if kind_g == "list":  # unordered: match each answer item to a distinct gold item
        remaining = list(values_g)
        for value in values_a:
            match = next((j for j, g in enumerate(remaining) if _compare_items(value, g) is True), None)
            if match is None:
                undecided = any(_compare_items(value, g) is None for g in remaining)
                return None if undecided else False
            remaining.pop(match)
        return True
    verdicts = [_compare_items(a, g) for a, g in zip(values_a, values_g)]
    if False in verdicts:
        return False
    return True if all(verdicts) else None
