"""Answers and completions derived from the real golds in ../shared/data/fastcurl, for the reward benchmarks.

Each derived answer carries the truth by construction: a *right* answer is the gold itself or the gold rewritten
in an equivalent form (a decimal for a terminating fraction, a reordered set, ``\\dfrac``, a unit, ``x =``, a
thousands separator, ...), a *wrong* answer is the gold with one number changed. The rewrite is named, so a
disagreement report can say why the truth is what it is.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pyarrow.parquet as pq

from fastcurl.data import normalize_ground_truth
from fastcurl.rewards.numeric import split_top_level

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fastcurl"
FILES = ["test/aime2024", "test/amc2023", "test/math", "test/minerva", "test/olympiadbench", "train/train_L2"]
INTEGER = re.compile(r"^-?\d+$")
FRACTION = re.compile(r"^(-?)\\frac\{(\d+)\}\{(\d+)\}$")


@dataclass
class DerivedAnswer:
    source: str
    golds: list[str]
    answer: str
    right: bool
    how: str


def load_golds(
    per_file: int | None = None, seed: int = 0, files: list[str] | None = None
) -> list[tuple[str, list[str]]]:
    """(file, golds) pairs in their stored shapes, normalised by the loader; ``per_file`` samples each file."""
    rng = random.Random(seed)
    pairs = []
    for name in files or FILES:
        rows = pq.read_table(DATA / f"{name}.parquet", columns=["reward_model"]).column("reward_model").to_pylist()
        if per_file is not None and len(rows) > per_file:
            rows = rng.sample(rows, per_file)
        for row in rows:
            golds = normalize_ground_truth(row["ground_truth"], name)
            if golds:
                pairs.append((name, golds))
    return pairs


def equivalent_forms(gold: str) -> list[tuple[str, str]]:
    """Rewrites of ``gold`` that a grader must accept, each with its name."""
    forms: list[tuple[str, str]] = []
    if INTEGER.match(gold):
        n = int(gold)
        forms += [(f"{n}.0", "integer as decimal"), (f"x = {n}", "leading x ="), (f"\\text{{{n}}}", "\\text{}")]
        if abs(n) >= 1000:
            forms.append((f"{n:,}", "thousands separators"))
        forms.append((f"{n} \\text{{ units}}", "trailing unit"))
        return forms
    frac = FRACTION.match(gold)
    if frac:
        sign, a, b = frac.groups()
        value = Fraction(int(a), int(b)) * (-1 if sign else 1)
        forms.append((gold.replace("\\frac", "\\dfrac"), "\\dfrac"))
        forms.append((f"{sign}{a}/{b}", "slash fraction"))
        denominator = value.denominator
        while denominator % 2 == 0:
            denominator //= 2
        while denominator % 5 == 0:
            denominator //= 5
        if denominator == 1:
            forms.append((f"{float(value):.10g}", "terminating decimal for a fraction"))
        return forms
    kind, parts = split_top_level(gold)
    parts = [p.strip() for p in parts if p.strip()]
    if kind == "list" and len(parts) > 1 and gold.lstrip()[:1] not in "([":
        forms.append((", ".join(reversed(parts)), "answer list reordered"))
    if "\\frac" in gold:
        forms.append((gold.replace("\\frac", "\\dfrac"), "\\dfrac"))
    if len(parts) == 1 and not re.search(r"[A-Za-z<>=]", re.sub(r"\\(?:d?frac|sqrt|pi|cdot|times)", "", gold)):
        forms.append((f"x = {gold}", "leading x ="))
    forms.append((f" {gold} ", "surrounding spaces"))
    return forms


def wrong_forms(gold: str) -> list[tuple[str, str]]:
    """Near misses: the gold with its last digit changed, or a sign flipped."""
    digits = [i for i, ch in enumerate(gold) if ch.isdigit()]
    forms = []
    if digits:
        i = digits[-1]
        forms.append((gold[:i] + str((int(gold[i]) + 1) % 10) + gold[i + 1 :], "last digit changed"))
    if INTEGER.match(gold) and int(gold) != 0:
        forms.append((str(-int(gold)), "sign flipped"))
    return forms


def derive_answers(pairs: list[tuple[str, list[str]]], seed: int = 0) -> list[DerivedAnswer]:
    """For every gold: the gold itself, each equivalent form, each near miss."""
    out = []
    for source, golds in pairs:
        gold = golds[0]
        out.append(DerivedAnswer(source, golds, gold, True, "gold as stored"))
        out += [DerivedAnswer(source, golds, a, True, how) for a, how in equivalent_forms(gold)]
        out += [DerivedAnswer(source, golds, a, False, how) for a, how in wrong_forms(gold) if a not in golds]
    return out


REASONING = [
    "First, let me restate the problem in my own words and list what is given.",
    "Let me set up the equations carefully and check each step.",
    "Wait, I should double-check that computation, since a sign error is easy to make here.",
    "Substituting back into the original condition confirms the value.",
    "Alternatively, consider the complementary case; it gives the same count.",
    "So the intermediate result is consistent with the constraint from the problem statement.",
]


def completion(answer: str, rng: random.Random, reasoning_sentences: int = 60) -> str:
    """An R1-style completion: long reasoning that closes ``</think>``, then the answer boxed."""
    thinking = " ".join(rng.choice(REASONING) for _ in range(reasoning_sentences))
    return f"{thinking}\n</think>\n\nPutting it together, the final answer is $\\boxed{{{answer}}}$."


def completion_batch(size: int = 1024, seed: int = 0, files: list[str] | None = None) -> list[DerivedAnswer]:
    """``size`` answers, half right and half wrong, at least half of the right ones rewritten."""
    rng = random.Random(seed)
    derived = derive_answers(load_golds(per_file=400 if files is None else 2000, seed=seed, files=files), seed)
    rewritten = [d for d in derived if d.right and d.how != "gold as stored"]
    as_stored = [d for d in derived if d.right and d.how == "gold as stored"]
    wrong = [d for d in derived if not d.right]
    half = size // 2
    right = rng.sample(rewritten, half * 3 // 4) + rng.sample(as_stored, half - half * 3 // 4)
    batch = right + rng.sample(wrong, size - half)
    rng.shuffle(batch)
    return batch
