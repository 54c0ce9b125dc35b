"""Find evaluation problems that leaked into a training set, before any GPU hour is spent on it.

Two kinds of match are reported. *Exact*: the problems are equal after normalising case, whitespace, LaTeX
spacing commands, ``$`` delimiters, ``\\left``/``\\right`` and ``\\dfrac``/``\\tfrac``. *Near*: most of the
shorter problem's word n-grams also occur in the other one (a reworded sentence, a changed number or a dropped
clause still match). An inverted index over the evaluation n-grams keeps this linear in the training set.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from datasets import Dataset

from .loading import INSTRUCTION, problem_text

_LATEX_SPACING = re.compile(r"\\[,;:! ]|\\q?quad\b|~|\\displaystyle\b|\\left\b|\\right\b|\$")
_FRAC_VARIANTS = re.compile(r"\\[dt]frac\b")
_WHITESPACE = re.compile(r"\s+")
_TOKEN = re.compile(r"\w+|[^\w\s]")


def normalize_problem(text: str) -> str:
    """The comparison form of a problem: lower case, LaTeX spacing and delimiters removed, spaces collapsed."""
    text = _FRAC_VARIANTS.sub(r"\\frac", text)
    text = _LATEX_SPACING.sub(" ", text)
    return _WHITESPACE.sub(" ", text).strip().lower()


def _exact_key(normalized: str) -> str:
    """Whitespace carries no meaning in a problem statement: ``$x$.`` and ``x .`` compare equal."""
    return normalized.replace(" ", "")


def word_ngrams(text: str, n: int) -> set[int]:
    """Hashed n-grams of the normalised problem's tokens; a problem shorter than n tokens is one n-gram."""
    tokens = _TOKEN.findall(text)
    if len(tokens) <= n:
        return {hash(tuple(tokens))} if tokens else set()
    return {hash(tuple(tokens[i : i + n])) for i in range(len(tokens) - n + 1)}


@dataclass
class ContaminationMatch:
    """One training problem that matches one evaluation problem."""

    train_index: int
    benchmark: str
    eval_index: int
    kind: str  # "exact" or "near"
    overlap: float  # share of the shorter problem's n-grams found in the other
    train_problem: str
    eval_problem: str


def _problems(dataset: Dataset | Iterable[str], instruction: str | None) -> list[str]:
    if isinstance(dataset, Dataset):
        return [problem_text(p, instruction) for p in dataset["prompt"]]
    return list(dataset)


def find_contamination(
    train: Dataset | Iterable[str],
    eval_sets: Mapping[str, Dataset | Iterable[str]],
    *,
    ngram: int = 8,
    threshold: float = 0.7,
    instruction: str | None = INSTRUCTION,
    progress: bool = False,
) -> list[ContaminationMatch]:
    """Training problems that also occur in an evaluation set, exactly or as near duplicates.

    ``train`` and each evaluation set are datasets in the loader's format (or plain problem strings). A pair is a
    near duplicate when at least ``threshold`` of the shorter problem's ``ngram``-token n-grams occur in the
    other. Returns the matches sorted by training index, exact ones first for each.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}.")
    if ngram < 1:
        raise ValueError(f"ngram must be at least 1, got {ngram}.")
    exact_index: dict[str, list[tuple[str, int]]] = defaultdict(list)
    gram_index: dict[int, list[tuple[str, int]]] = defaultdict(list)
    eval_texts: dict[tuple[str, int], str] = {}
    eval_sizes: dict[tuple[str, int], int] = {}
    for name, dataset in eval_sets.items():
        for i, text in enumerate(_problems(dataset, instruction)):
            norm = normalize_problem(text)
            exact_index[_exact_key(norm)].append((name, i))
            grams = word_ngrams(norm, ngram)
            eval_texts[(name, i)], eval_sizes[(name, i)] = text, len(grams)
            for gram in grams:
                gram_index[gram].append((name, i))

    train_texts = _problems(train, instruction)
    iterator: Iterable[tuple[int, str]] = enumerate(train_texts)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, total=len(train_texts), desc="contamination check", unit="problem")
    matches: list[ContaminationMatch] = []
    for row, text in iterator:
        norm = normalize_problem(text)
        exact = set(exact_index.get(_exact_key(norm), ()))
        for name, i in sorted(exact):
            matches.append(ContaminationMatch(row, name, i, "exact", 1.0, text, eval_texts[(name, i)]))
        grams = word_ngrams(norm, ngram)
        hits: Counter[tuple[str, int]] = Counter()
        for gram in grams:
            for key in gram_index.get(gram, ()):
                hits[key] += 1
        for key, count in sorted(hits.items()):
            if key in exact:
                continue
            overlap = count / max(1, min(len(grams), eval_sizes[key]))
            if overlap >= threshold:
                matches.append(ContaminationMatch(row, key[0], key[1], "near", round(overlap, 4), text,
                                                  eval_texts[key]))
    return matches


def contamination_report(matches: list[ContaminationMatch], train_size: int) -> dict[str, Any]:
    """Counts per benchmark and kind, and every match, ready for JSON."""
    per_benchmark: dict[str, dict[str, int]] = defaultdict(lambda: {"exact": 0, "near": 0})
    for match in matches:
        per_benchmark[match.benchmark][match.kind] += 1
    return {
        "train_size": train_size,
        "contaminated_train_problems": len({m.train_index for m in matches}),
        "per_benchmark": dict(per_benchmark),
        "matches": [asdict(m) for m in matches],
    }
