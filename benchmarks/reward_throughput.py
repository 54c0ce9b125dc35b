"""Completions per second: fastcurl's reward versus math-verify's parse + verify (and TRL's reward), one run.

The batch: 1,024 R1-style completions built from the real golds in ../shared/data/fastcurl (long reasoning
that closes </think>, then a boxed answer); half right, half wrong, three quarters of the right ones rewritten
in an equivalent form (decimal for a fraction, reordered list, \\dfrac, unit, x =, ...), so string equality alone
cannot win. Each grader starts cold (no cache). Reported: throughput and its ratio, agreement between the
graders, accuracy against the truth by construction, and p50/p99/max latency per completion (one completion
at a time, so latency is not hidden by batching).

    python benchmarks/reward_throughput.py [--size 1024] [--latency-sample 256]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _answers import completion, completion_batch  # noqa: E402


def math_verify_one(text: str, golds: list[str]) -> bool:
    from math_verify import parse, verify

    try:
        answer = parse(text)
        return any(verify(parse(f"${g}$"), answer) for g in golds)
    except Exception:
        return False


def percentiles(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return f"p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms, max {ms.max():.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--latency-sample", type=int, default=256, help="Completions timed one at a time.")
    args = parser.parse_args()

    from fastcurl.rewards import SymbolicPool, Verifier, extract_answer

    batch = completion_batch(args.size)
    rng = random.Random(1)
    texts = [completion(d.answer, rng) for d in batch]
    golds = [d.golds for d in batch]
    truth = [d.right for d in batch]
    rewritten = sum(d.right and d.how != "gold as stored" for d in batch)
    print(f"{len(batch)} completions, mean {np.mean([len(t) for t in texts]):,.0f} characters; "
          f"{sum(truth)} right ({rewritten} rewritten), {len(batch) - sum(truth)} wrong")

    pool = SymbolicPool()
    pool.map([("x+1", ["1+x"])])  # start the workers: a training run pays this once, not per step
    verifier = Verifier(pool=pool)
    start = time.perf_counter()
    ours = verifier.verify_batch([extract_answer(t) for t in texts], golds)
    ours_s = time.perf_counter() - start

    start = time.perf_counter()
    theirs = [math_verify_one(t, g) for t, g in zip(texts, golds)]
    theirs_s = time.perf_counter() - start

    trl_s = trl = None
    try:
        from trl.rewards import reasoning_accuracy_reward

        start = time.perf_counter()
        trl = reasoning_accuracy_reward([[{"role": "assistant", "content": t}] for t in texts],
                                        solution=[f"${g[0]}$" for g in golds])
        trl_s = time.perf_counter() - start
        trl = [bool(v) for v in trl]
    except ImportError:
        pass

    sample = list(range(min(args.latency_sample, len(batch))))
    fresh = Verifier(pool=pool)
    ours_lat, theirs_lat = [], []
    for i in sample:
        t0 = time.perf_counter()
        fresh.verify_batch([extract_answer(texts[i])], [golds[i]])
        ours_lat.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        math_verify_one(texts[i], golds[i])
        theirs_lat.append(time.perf_counter() - t0)
    pool.close()

    def accuracy(verdicts: list[bool]) -> str:
        return f"{np.mean([v == t for v, t in zip(verdicts, truth)]):.2%}"

    n = len(batch)
    print(f"fastcurl     : {n / ours_s:8.1f} completions/s ({ours_s:.2f} s), accuracy {accuracy(ours)}, "
          f"symbolic checks {pool.stats['symbolic_checks']}, timeouts {pool.stats['timeouts']}")
    print(f"math-verify  : {n / theirs_s:8.1f} completions/s ({theirs_s:.2f} s), accuracy {accuracy(theirs)}")
    if trl is not None:
        print(f"TRL reasoning_accuracy_reward: {n / trl_s:8.1f} completions/s ({trl_s:.2f} s), "
              f"accuracy {accuracy(trl)}")
    print(f"throughput ratio fastcurl / math-verify: {theirs_s / ours_s:.1f}x (target >= 5x)")
    print(f"agreement with math-verify: {np.mean([a == b for a, b in zip(ours, theirs)]):.2%}")
    print(f"latency per completion, {len(sample)} one at a time: fastcurl {percentiles(ours_lat)}; "
          f"math-verify {percentiles(theirs_lat)}")


if __name__ == "__main__":
    main()
