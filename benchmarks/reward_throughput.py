"""Completions per second as a training run sees them: fastcurl's reward versus math-verify's parse + verify.

The batch: 1,024 R1-style completions built from the real golds in ../shared/data/fastcurl (long reasoning
that closes </think>, then a boxed answer); half right, half wrong, three quarters of the right ones rewritten
in an equivalent form, so string equality alone cannot win. Every figure comes from a fresh process:

- cold: the process starts the symbolic pool as the trainer does (``default_pool().start()``, in the background)
  and scores its first batch at once, every wait on a starting worker included; math-verify scores the same
  batch first thing in its process (its import included);
- warm: the same process scores the batch again with an empty cache (fastcurl) / again (math-verify);
- busy: cold and warm once more with one CPU-bound process per core running beside them;
- worker start: time to "ready" and resident memory of one worker, against importing math-verify alone.

    python benchmarks/reward_throughput.py [--size 1024]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))


def math_verify_one(text: str, golds: list[str]) -> bool:
    from math_verify import parse, verify

    try:
        answer = parse(text)
        return any(verify(parse(f"${g}$"), answer) for g in golds)
    except Exception:
        return False


def child(side: str, size: int) -> None:
    """One fresh process: build the batch (untimed), then time the first and the second scoring of it."""
    from _answers import completion, completion_batch

    batch = completion_batch(size)
    rng = random.Random(1)
    texts = [completion(d.answer, rng) for d in batch]
    golds = [d.golds for d in batch]
    truth = [d.right for d in batch]
    times, verdicts, stats = [], [], {}
    if side == "fastcurl":
        from fastcurl.rewards import Verifier, default_pool, extract_answer

        start = time.perf_counter()
        pool = default_pool().start()  # what the trainer does at construction
        for _ in range(2):
            verifier = Verifier(pool=pool)  # no cache carried from the first round
            verdicts = verifier.verify_batch([extract_answer(t) for t in texts], golds)
            times.append(time.perf_counter() - start)
            start = time.perf_counter()
        stats = dict(pool.stats)
    else:
        start = time.perf_counter()
        for _ in range(2):
            verdicts = [math_verify_one(t, g) for t, g in zip(texts, golds)]
            times.append(time.perf_counter() - start)
            start = time.perf_counter()
    accuracy = float(np.mean([v == t for v, t in zip(verdicts, truth)]))
    print(json.dumps({"cold": times[0], "warm": times[1], "accuracy": accuracy, "stats": stats}))


def run_child(side: str, size: int) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", side, "--size", str(size)], capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _burn() -> None:
    while True:
        pass


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        line = next(x for x in f if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def worker_start() -> tuple[float, float]:
    from fastcurl.rewards.verify import _worker_env, worker_command

    start = time.perf_counter()
    process = subprocess.Popen(worker_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env=_worker_env())
    process.stdout.readline()
    seconds = time.perf_counter() - start
    memory = rss_mb(process.pid)
    process.kill()
    return seconds, memory


def math_verify_import() -> tuple[float, float]:
    code = ("import time, sys; t = time.perf_counter(); from math_verify import parse, verify; "
            "verify(parse('$1$'), parse('$1$')); sys.stdout.write(str(time.perf_counter() - t) + '\\n'); "
            "sys.stdout.flush(); sys.stdin.readline()")
    process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    seconds = float(process.stdout.readline())
    memory = rss_mb(process.pid)
    process.kill()
    return seconds, memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--child", choices=["fastcurl", "math-verify"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.size)
        return

    import torch

    print(f"machine: {os.cpu_count()} cores, torch CPU capability {torch.backends.cpu.get_cpu_capability()}; "
          f"{args.size} completions per batch")
    for label, burners in (("idle", 0), ("busy", os.cpu_count() or 1)):
        procs = [mp.Process(target=_burn, daemon=True) for _ in range(burners)]
        for p in procs:
            p.start()
        try:
            ours, theirs = run_child("fastcurl", args.size), run_child("math-verify", args.size)
        finally:
            for p in procs:
                p.kill()
        for phase in ("cold", "warm"):
            print(f"{label:4} {phase}: fastcurl {args.size / ours[phase]:7.1f}/s ({ours[phase]:.2f} s), "
                  f"math-verify {args.size / theirs[phase]:7.1f}/s ({theirs[phase]:.2f} s): "
                  f"ratio {theirs[phase] / ours[phase]:.1f}x")
        print(f"{label:4} accuracy by construction: fastcurl {ours['accuracy']:.2%}, math-verify "
              f"{theirs['accuracy']:.2%}; pool {ours['stats']}")
    ws, wm = worker_start()
    ms, mm = math_verify_import()
    print(f"worker start {ws:.2f} s, {wm:.0f} MB resident; math-verify import alone {ms:.2f} s, {mm:.0f} MB")


if __name__ == "__main__":
    main()
