"""Where our verdict and math-verify's differ, on answers derived from every real gold, and who is right.

Every gold of the five test sets and a sample of the training set yields the gold itself, equivalent rewrites
and near misses (benchmarks/_answers.py), each boxed after a think block. Both graders see the same completion:
ours through ``accuracy_reward``, math-verify through ``parse`` + ``verify(gold, answer)``. The truth is known by
construction, so each disagreement names the rewrite that makes one side wrong.

Then the labelled pairs of ``--pairs`` (default ``tests/data/adversarial_pairs.jsonl``, an independent suite
written by someone who had not seen the reward's code): one JSON object a line, ``{"answer": ..., "gold": str or
[str, ...], "equivalent": true|false, "class": ...}``. Both graders see ``</think> \\boxed{answer}``; printed:
accuracy, false positives (a wrong answer accepted: the costly error) and false negatives, per class.

    python benchmarks/reward_disagreements.py [--train-sample 2000] [--out disagreements.json] [--pairs FILE]
    python benchmarks/reward_disagreements.py --pairs-only
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _answers import completion, derive_answers, load_golds  # noqa: E402

PAIRS = Path(__file__).resolve().parents[1] / "tests" / "data" / "adversarial_pairs.jsonl"


def math_verify_verdicts(completions: list[str], golds: list[list[str]]) -> list[bool]:
    from math_verify import parse, verify

    verdicts = []
    for text, gold_list in zip(completions, golds):
        try:
            answer = parse(text)
            verdicts.append(any(verify(parse(f"${g}$"), answer) for g in gold_list))
        except Exception:
            verdicts.append(False)
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-sample", type=int, default=1000, help="Training golds to sample (test sets: all).")
    parser.add_argument("--out", default="reward_disagreements.json")
    parser.add_argument("--pairs", default=str(PAIRS), help="Labelled answer/gold pairs (JSONL).")
    parser.add_argument("--pairs-only", action="store_true", help="Only the labelled pairs.")
    args = parser.parse_args()
    if not args.pairs_only:
        derived_report(args)
        table_report()
    if Path(args.pairs).exists():
        labelled_report(Path(args.pairs))
    else:
        print(f"no labelled pairs at {args.pairs}")


def table_report() -> None:
    """Both graders on the verdict table (tests/reward_cases.py), each case as a completion."""
    sys.path.insert(0, str(PAIRS.parents[1]))
    from reward_cases import CASES

    rows = []
    for category, item, gold, verdict in CASES:
        answer = None if category == "extraction" else item
        text = item if category == "extraction" else f"</think> The answer is $\\boxed{{{item}}}$."
        golds = [str(g) for g in gold] if isinstance(gold, list) else [str(gold)]
        rows.append((category, answer, text, golds, verdict))
    _compare_graders("verdict table", [r[2] for r in rows], [r[3] for r in rows], [r[4] for r in rows],
                     [r[0] for r in rows], [r[1] or r[2] for r in rows])


def _compare_graders(title: str, completions: list[str], golds: list[list[str]], truth: list[bool],
                     classes: list[str], shown: list[str]) -> None:
    from fastcurl.rewards import accuracy_reward

    verdicts = {
        "fastcurl": [bool(v) for v in accuracy_reward(completions, ground_truth=golds)],
        "math-verify": math_verify_verdicts(completions, golds),
    }
    n = len(truth)
    print(f"\n{title}: {n} pairs ({sum(truth)} equivalent, {n - sum(truth)} not)")
    for name, got in verdicts.items():
        right = sum(g == t for g, t in zip(got, truth))
        bad = [(kind, i) for i, (g, t) in enumerate(zip(got, truth)) if g != t
               for kind in ["false positive" if g else "false negative"]]
        false_pos = sum(k == "false positive" for k, _ in bad)
        print(f"{name:<12}: accuracy {right / n:.3f} ({right}/{n}), false positives {false_pos}, "
              f"false negatives {len(bad) - false_pos}")
        for kind, i in bad[:60]:
            print(f"    {kind}: answer {shown[i]!r} gold {golds[i]!r} ({classes[i]})")
    tally: Counter = Counter()
    for i, cls in enumerate(classes):
        tally[(cls, "n")] += 1
        for name, got in verdicts.items():
            tally[(cls, name)] += got[i] == truth[i]
    print("per class, right / pairs: fastcurl, math-verify")
    for cls in sorted({c for c in classes}):
        print(f"  {cls:<28} {tally[(cls, 'fastcurl')]:>4} {tally[(cls, 'math-verify')]:>4} / {tally[(cls, 'n')]}")


def labelled_report(path: Path) -> None:
    """Both graders on an independent labelled suite: accuracy, false positives and negatives, per class."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    golds = [[r["gold"]] if isinstance(r["gold"], str) else [str(g) for g in r["gold"]] for r in rows]
    completions = [f"Let me work it out.\n</think>\nThe answer is $\\boxed{{{r['answer']}}}$." for r in rows]
    _compare_graders(f"labelled pairs from {path.name}", completions, golds, [bool(r["equivalent"]) for r in rows],
                     [str(r.get("class", "")) for r in rows], [r["answer"] for r in rows])


def derived_report(args: argparse.Namespace) -> None:
    """Answers derived from every real gold: where the graders differ and who is right."""

    from fastcurl.rewards import accuracy_reward

    pairs = [p for p in load_golds() if not p[0].startswith("train")]
    pairs += random.Random(0).sample([p for p in load_golds() if p[0].startswith("train")], args.train_sample)
    derived = derive_answers(pairs)
    rng = random.Random(0)
    completions = [completion(d.answer, rng, reasoning_sentences=5) for d in derived]
    golds = [d.golds for d in derived]
    print(f"{len(derived)} answers from {len(pairs)} golds; grading with fastcurl and math-verify ...", flush=True)
    ours = [bool(v) for v in accuracy_reward(completions, ground_truth=golds)]
    theirs = math_verify_verdicts(completions, golds)

    rows, both_wrong, tally = [], [], Counter()
    for d, o, t in zip(derived, ours, theirs):
        tally["ours right"] += o == d.right
        tally["math-verify right"] += t == d.right
        if o == t:
            if o != d.right:
                both_wrong.append({"source": d.source, "golds": d.golds, "answer": d.answer, "truth": d.right,
                                   "how": d.how})
            continue
        winner = "fastcurl" if o == d.right else "math-verify"
        tally[f"{winner} right in disagreement"] += 1
        truth = "equivalent" if d.right else "not equivalent"
        rows.append({
            "source": d.source, "golds": d.golds, "answer": d.answer, "truth": d.right, "fastcurl": o,
            "math_verify": t, "right": winner,
            "reason": f"the answer is the gold {'rewritten' if d.right else 'changed'} ({d.how}): {truth}",
        })
    Path(args.out).write_text(json.dumps({"tally": tally, "disagreements": rows, "both_wrong": both_wrong}, indent=2))
    n = len(derived)
    print(f"fastcurl right on {tally['ours right']}/{n} ({tally['ours right'] / n:.2%}), "
          f"math-verify on {tally['math-verify right']}/{n} ({tally['math-verify right'] / n:.2%})")
    print(f"{len(rows)} disagreements: fastcurl right in {tally['fastcurl right in disagreement']}, "
          f"math-verify right in {tally['math-verify right in disagreement']}")
    by_reason = Counter((r["right"], r["source"].split("/")[-1], r["reason"]) for r in rows)
    for (winner, source, reason), count in by_reason.most_common():
        print(f"  {count:>4}  {winner:<11} right  {source:<13} {reason}")
    wrong_ours = [r for r in rows if r["right"] == "math-verify"]
    for r in wrong_ours[:20]:
        print(f"  fastcurl wrong: answer {r['answer']!r} gold {r['golds']!r} ({r['reason']})")
    print(f"{len(both_wrong)} answers both graders get wrong:")
    for r in both_wrong[:20]:
        print(f"  answer {r['answer']!r} gold {r['golds']!r} ({r['how']}, truth {r['truth']})")
    print(f"details in {args.out}")


if __name__ == "__main__":
    main()
