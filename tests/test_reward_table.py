"""The reward's verdicts, case by case (tests/reward_cases.py), and on the real golds of every data file."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from reward_cases import CASES

from fastcurl.data import normalize_ground_truth
from fastcurl.rewards import accuracy_reward, default_verifier

CATEGORIES = sorted({case[0].split(":")[0] for case in CASES})


def test_table_is_large_and_covers_every_category():
    counts = Counter(case[0].split(":")[0] for case in CASES)
    assert len(CASES) >= 200
    assert set(counts) >= {"extraction", "normalization", "integer", "fraction", "radical", "expression",
                           "equation", "interval", "set", "matrix", "complex", "infinity", "choice", "several",
                           "real"}
    assert min(counts.values()) >= 10, counts
    sources = {case[0] for case in CASES if case[0].startswith("real:")}
    assert sources == {"real:train", "real:aime2024", "real:amc2023", "real:math500", "real:minerva",
                       "real:olympiad"}
    for verdict in (True, False):  # every category has both right answers and near misses
        assert {c[0].split(":")[0] for c in CASES if c[3] is verdict} == set(counts)


@pytest.mark.parametrize("category", CATEGORIES)
def test_verdicts(category):
    cases = [case for case in CASES if case[0].split(":")[0] == category]
    if category == "extraction":
        got = [bool(v) for v in accuracy_reward([c[1] for c in cases], ground_truth=[c[2] for c in cases])]
    else:
        got = default_verifier().verify_batch([c[1] for c in cases], [c[2] for c in cases])
    wrong = [(c[1], c[2], f"expected {c[3]}") for c, g in zip(cases, got) if g != c[3]]
    assert not wrong, wrong


FILES = ["train/train_L1", "train/train_L3", "test/aime2024", "test/amc2023", "test/math", "test/minerva",
         "test/olympiadbench"]


@pytest.mark.parametrize("name", FILES)
def test_real_golds_accept_themselves_boxed_and_reject_a_changed_answer(sample_data, name):
    """Each stored gold, boxed after a think block, earns 1; the same with a digit changed earns 0."""
    rows = pq.read_table(sample_data / f"{name}.parquet").column("reward_model").to_pylist()[:40]
    golds = [normalize_ground_truth(r["ground_truth"], name) for r in rows]
    golds = [g for g in golds if g]
    right = [f"Some reasoning.</think>\nSo the answer is $\\boxed{{{g[0]}}}$." for g in golds]
    assert accuracy_reward(right, ground_truth=golds) == [1.0] * len(golds)
    changed, changed_golds = [], []
    for g in golds:
        digits = [i for i, ch in enumerate(g[0]) if ch.isdigit()]
        if not digits or len(g) > 1:
            continue
        i = digits[-1]
        wrong = g[0][:i] + str((int(g[0][i]) + 1) % 10) + g[0][i + 1:]
        changed.append(f"</think> \\boxed{{{wrong}}}")
        changed_golds.append(g)
    assert len(changed) >= 10
    assert accuracy_reward(changed, ground_truth=changed_golds) == [0.0] * len(changed)


ADVERSARIAL = Path(__file__).parent / "data" / "adversarial_pairs.jsonl"


@pytest.mark.skipif(not ADVERSARIAL.exists(), reason="the independent adversarial suite is not written yet")
def test_independent_adversarial_suite_has_no_false_positive():
    """Labelled pairs by someone who had not seen the code: a wrong answer accepted is the costly error."""
    rows = [json.loads(line) for line in ADVERSARIAL.read_text().splitlines() if line.strip()]
    golds = [[r["gold"]] if isinstance(r["gold"], str) else [str(g) for g in r["gold"]] for r in rows]
    got = default_verifier().verify_batch([r["answer"] for r in rows], golds)
    accepted_wrong = [(r["answer"], r["gold"]) for r, g in zip(rows, got) if g and not r["equivalent"]]
    assert not accepted_wrong, accepted_wrong
