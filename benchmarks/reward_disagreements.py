"""Where our verdict and math-verify's differ, on answers derived from every real gold, and who is right.

Every gold of the five test sets and a sample of the training set yields the gold itself, equivalent rewrites
and near misses (benchmarks/_answers.py), each boxed after a think block. Both graders see the same completion:
ours through ``accuracy_reward``, math-verify through ``parse`` + ``verify(gold, answer)``. The truth is known by
construction, so each disagreement names the rewrite that makes one side wrong.

    python benchmarks/reward_disagreements.py [--train-sample 2000] [--out disagreements.json]
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
    args = parser.parse_args()

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
