"""A numeric fingerprint: evaluate two LaTeX answers at random points and compare the values.

Most answers a symbolic check would see are arithmetic in a small LaTeX subset (numbers, ``+ - * /``, powers,
``\\frac``, ``\\sqrt``, ``\\pi``, ``i``, ``e``, a few functions, letters as variables, tuples and lists). Our own
recursive-descent parser reads that subset into complex values; nothing is handed to Python's ``eval`` or
sympy, so model text stays inert. Two expressions that differ at a random point are different; two that agree
at every one of several random points are equal (the chance that distinct expressions of this kind agree at
random points is negligible). Anything outside the subset, or a value that is not finite, returns None and
goes to the symbolic check.
"""

from __future__ import annotations

import cmath
import math
import random
import re
from collections.abc import Callable

MAX_CHARS = 400
MAX_DEPTH = 40
NUM_POINTS = 3
EQUAL_TOL = 1e-12  # relative; floating-point error of these short expressions stays far below it
DIFFERENT_TOL = 1e-9  # relative; between the two tolerances the symbolic check decides
TINY = 1e-8  # against an exact zero, a value this small could be float noise

_GREEK = ("alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta kappa lambda mu nu xi rho sigma tau "
          "phi varphi chi psi omega Gamma Delta Theta Lambda Xi Sigma Phi Psi Omega").split()
_UNSUPPORTED = ("infty", "cdots", "ldots", "dots", "vdots", "text", "mathrm", "textbf", "operatorname")
_FUNCTIONS: dict[str, Callable[[complex], complex]] = {
    "sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan, "ln": cmath.log, "log": cmath.log, "exp": cmath.exp,
}
_COMMANDS = sorted(
    ["frac", "dfrac", "tfrac", "sqrt", "pi", "cdot", "times", *_UNSUPPORTED, *_GREEK, *_FUNCTIONS],
    key=len,
    reverse=True,
)
_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.?\d*|\.\d+)|\\(?P<cmd>" + "|".join(_COMMANDS) + r")|(?P<ch>[A-Za-z]|[-+*/^(){}\[\]_!,]))"
)
_STRIP = re.compile(r"\\left|\\right|\\!|\\,|\\;|\\:|\\ |\\displaystyle|\$")


class _Unsupported(Exception):
    pass


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

    def expr(self) -> Callable[[dict[str, complex]], complex]:
        self.enter()
        node = self.term()
        while (token := self.peek()) and token[1] in "+-" and token[0] == "ch":
            op = self.take()[1]
            right = self.term()
            node = (lambda a, b: lambda env: a(env) + b(env))(node, right) if op == "+" else (
                lambda a, b: lambda env: a(env) - b(env))(node, right)
        self.depth -= 1
        return node

    def starts_atom(self, token: tuple[str, str] | None) -> bool:
        if token is None:
            return False
        kind, value = token
        return kind in ("num", "cmd") and value not in ("cdot", "times") or (kind == "ch" and (
            value.isalpha() or value in "({"))

    def term(self) -> Callable[[dict[str, complex]], complex]:
        node = self.unary()
        while True:
            token = self.peek()
            if token and (token[1] in ("*", "/") and token[0] == "ch" or token[1] in ("cdot", "times")):
                op = self.take()[1]
                right = self.unary()
                if op == "/":
                    node = (lambda a, b: lambda env: a(env) / b(env))(node, right)
                else:
                    node = (lambda a, b: lambda env: a(env) * b(env))(node, right)
            elif self.starts_atom(token):
                right = self.power()
                node = (lambda a, b: lambda env: a(env) * b(env))(node, right)
            else:
                return node

    def unary(self) -> Callable[[dict[str, complex]], complex]:
        token = self.peek()
        if token and token[0] == "ch" and token[1] in "+-":
            self.take()
            self.enter()
            inner = self.unary()
            self.depth -= 1
            return inner if token[1] == "+" else (lambda a: lambda env: -a(env))(inner)
        return self.power()

    def power(self) -> Callable[[dict[str, complex]], complex]:
        base = self.atom()
        token = self.peek()
        if token and token[1] == "!":
            self.take()
            base = (lambda a: lambda env: _factorial(a(env)))(base)
            token = self.peek()
        if token and token[1] == "^":
            self.take()
            exponent = self.group_or_single()
            return (lambda a, b: lambda env: _pow(a(env), b(env)))(base, exponent)
        return base

    def group_or_single(self) -> Callable[[dict[str, complex]], complex]:
        token = self.peek()
        if token and token[1] == "{":
            return self.group()
        if token and token[0] == "num":  # x^23 means x^2 * 3 in LaTeX: one digit binds
            self.take()
            digits = token[1]
            first = complex(float(digits[0]))
            if len(digits) > 1:
                self.tokens.insert(self.pos, ("num", digits[1:]))
            return lambda env: first
        return self.atom()

    def group(self) -> Callable[[dict[str, complex]], complex]:
        self.take("{")
        inner = self.expr()
        self.take("}")
        return inner

    def atom(self) -> Callable[[dict[str, complex]], complex]:
        self.enter()
        kind, value = self.take()
        self.depth -= 1
        if kind == "num":
            number = complex(float(value))
            return lambda env: number
        if kind == "cmd":
            if value in ("frac", "dfrac", "tfrac"):
                num, den = self.group_or_single(), self.group_or_single()
                return lambda env: num(env) / den(env)
            if value == "sqrt":
                index = None
                if self.peek() and self.peek()[1] == "[":
                    self.take("[")
                    index = self.expr()
                    self.take("]")
                radicand = self.group_or_single()
                if index is None:
                    return lambda env: cmath.sqrt(radicand(env))
                return lambda env: _pow(radicand(env), 1 / index(env))
            if value == "pi":
                return lambda env: complex(math.pi)
            if value in _FUNCTIONS:
                function = _FUNCTIONS[value]
                argument = self.power()
                return lambda env: function(argument(env))
            if value in _GREEK:
                return self.symbol("\\" + value)
            raise _Unsupported(value)  # \infty, \ldots, \text, ...
        if value == "(":
            inner = self.expr()
            self.take(")")
            return inner
        if value == "{":
            inner = self.expr()
            self.take("}")
            return inner
        if value.isalpha():
            if value == "i":
                return lambda env: 1j
            if value == "e":
                return lambda env: complex(math.e)
            return self.symbol(value)
        raise _Unsupported(value)

    def symbol(self, name: str) -> Callable[[dict[str, complex]], complex]:
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
        return lambda env: env[name]


def _pow(base: complex, exponent: complex) -> complex:
    if abs(exponent) > 1000 or (abs(base) > 1e6 and abs(exponent) > 50):
        raise OverflowError
    if exponent == int(exponent.real) and exponent.imag == 0 and base.imag == 0:
        return complex(base.real ** int(exponent.real)) if base != 0 or exponent.real >= 0 else complex("nan")
    return base**exponent


def _factorial(value: complex) -> complex:
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


def _compile(text: str) -> tuple[Callable[[dict[str, complex]], complex], set[str]]:
    parser = _Parser(_tokenize(text))
    node = parser.expr()
    if parser.peek() is not None or parser.ambiguous:
        raise _Unsupported("trailing input or function notation")
    return node, parser.symbols


def _values(text: str, points: list[dict[str, complex]]) -> list[complex] | None:
    node, symbols = _compile(text)
    values = []
    for env in points:
        if not symbols <= env.keys():
            return None
        value = node(env)
        if not (math.isfinite(value.real) and math.isfinite(value.imag)):
            return None
        values.append(value)
    return values


def _points(texts: list[str]) -> list[dict[str, complex]]:
    """The same random assignment for every symbol on both sides, seeded by the symbol names."""
    names: set[str] = set()
    for text in texts:
        names |= _compile(text)[1]
    rng = random.Random(",".join(sorted(names)))
    return [{name: complex(rng.uniform(0.5, 2.5)) for name in sorted(names)} for _ in range(NUM_POINTS)]


def _compare(a: list[complex], b: list[complex]) -> bool | None:
    equal = True
    for x, y in zip(a, b):
        scale = max(abs(x), abs(y))
        if min(abs(x), abs(y)) == 0 and scale < TINY:
            if scale == 0:
                continue
            return None  # an exact zero against float noise
        gap = abs(x - y)
        if gap > DIFFERENT_TOL * scale:
            return False
        equal &= gap <= EQUAL_TOL * scale
    return True if equal else None


_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{3,}")
_DECIMAL = re.compile(r"\d\.\d|(?<!\d)\.\d")
_MIXED_NUMBER = re.compile(r"\d\s*\\[dt]?frac")  # 2\frac{1}{2} is 5/2 by convention, not 2 * 1/2


def fingerprint_equal(answer: str, gold: str) -> bool | None:
    """True/False when both sides are in the supported subset and evaluate; None when undecided.

    Undecided by design: equations and inequalities, words (``east`` is not ``e*a*s*t``), function notation, and
    golds holding decimals (an approximate gold needs the rounding rule, not a value comparison).
    """
    both = answer + " " + gold
    if len(answer) > MAX_CHARS or len(gold) > MAX_CHARS or any(c in both for c in "=<>|") or _WORD.search(both):
        return None
    if _DECIMAL.search(gold) or _MIXED_NUMBER.search(both):
        return None
    answer, gold = _STRIP.sub("", answer), _STRIP.sub("", gold)
    try:
        kind_a, items_a = split_top_level(answer)
        kind_g, items_g = split_top_level(gold)
        if kind_a != kind_g:
            return None
        points = _points(items_a + items_g)
        values_a = [_values(item, points) for item in items_a]
        values_g = [_values(item, points) for item in items_g]
    except (_Unsupported, ZeroDivisionError, OverflowError, ValueError, RecursionError, KeyError, IndexError):
        return None
    if any(v is None for v in values_a + values_g):
        return None
    if len(values_a) != len(values_g):
        return False
    if kind_g == "list":  # unordered: match each answer item to a distinct gold item
        remaining = list(values_g)
        for value in values_a:
            match = next((j for j, g in enumerate(remaining) if _compare(value, g) is True), None)
            if match is None:
                undecided = any(_compare(value, g) is None for g in remaining)
                return None if undecided else False
            remaining.pop(match)
        return True
    verdicts = [_compare(a, g) for a, g in zip(values_a, values_g)]
    if False in verdicts:
        return False
    return True if all(verdicts) else None
