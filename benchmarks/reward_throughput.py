"""What a training run sees of the reward: fastcurl against math-verify's parse + verify, ratios in one run.

The batch: 1,024 R1-style completions built from the real training golds in ../shared/data/fastcurl (long
reasoning that closes </think>, then a boxed answer); half right, three quarters of the right ones rewritten
in an equivalent form (decimal for a fraction, reordered list, \\dfrac, unit, x =, ...), half wrong.

- cold: a fresh process imports the grader, starts the pool as the trainer does (``default_pool().start()``,
  non-blocking) and at once scores the first batch, timed from before the import to the last verdict, every
  wait on workers included; math-verify the same from before its import;
- warm: the same process scores a second, different batch (cache cleared);
- busy: both again with one CPU-bound process per core running beside them;
- worker start time and resident memory (fork server, a forked worker, a replacement) against math-verify's
  import alone in a fresh interpreter;
- hostile answers, each on a cold pool (code in the box, a power tower, a megabyte of text, thousands of
  boxes): seconds to the verdict against the check's deadline + 2 s; one call holding 16 distinct power towers
  against 16 x deadline / workers + 5 s.

    python benchmarks/reward_throughput.py [--size 1024] [--no-busy]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _answers import completion, completion_batch  # noqa: E402

TRAIN = ["train/train_L2"]
ROOT = Path(__file__).resolve().parents[1]


def math_verify_one(text: str, golds: list[str]) -> bool:
    from math_verify import parse, verify

    try:
        answer = parse(text)
        return any(verify(parse(f"${g}$"), answer) for g in golds)
    except Exception:
        return False


def phase(grader: str, batches_file: str) -> None:
    """In a fresh process: cold batch, then warm batch; one JSON line on stdout."""
    batches = json.loads(Path(batches_file).read_text())
    start = time.perf_counter()
    if grader == "fastcurl":
        from fastcurl.rewards import default_pool, default_verifier, extract_answer

        default_pool().start()  # what the trainer does at construction

        def grade(texts: list[str], golds: list[list[str]]) -> list[bool]:
            return default_verifier().verify_batch([extract_answer(t) for t in texts], golds)
    else:
        import math_verify  # noqa: F401

        def grade(texts: list[str], golds: list[list[str]]) -> list[bool]:
            return [math_verify_one(t, g) for t, g in zip(texts, golds)]

    out = {}
    for name, batch in zip(("cold", "warm"), batches):
        if name == "warm":
            start = time.perf_counter()
            if grader == "fastcurl":
                default_verifier().cache.clear()
        verdicts = grade(batch["texts"], batch["golds"])
        seconds = time.perf_counter() - start
        accuracy = sum(v == t for v, t in zip(verdicts, batch["truth"])) / len(verdicts)
        out[name] = {"seconds": seconds, "per_s": len(verdicts) / seconds, "accuracy": accuracy}
    if grader == "fastcurl":
        out["stats"] = dict(default_pool().stats)
    print(json.dumps(out))


def build_batches(size: int) -> str:
    batches = []
    for seed in (0, 1):
        rng = random.Random(seed)
        batch = completion_batch(size, seed=seed, files=TRAIN)
        batches.append({"texts": [completion(d.answer, rng) for d in batch], "golds": [d.golds for d in batch],
                        "truth": [d.right for d in batch]})
    path = Path(tempfile.mkdtemp()) / "batches.json"
    path.write_text(json.dumps(batches))
    return str(path)


def run_phase(grader: str, batches_file: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, __file__, "--phase", grader, "--batches", batches_file],
                            capture_output=True, text=True, env=env, timeout=1800)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(lines[-1])


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def private_mb(pid: int) -> float:
    """Memory only this process holds (a forked worker shares the server's pages until it writes them)."""
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1])
    return total / 1024


def measure_start() -> dict:
    from fastcurl.rewards import SymbolicPool

    pool = SymbolicPool(num_workers=1)
    began = time.perf_counter()
    pool.start()
    while pool.ready_workers < 1:
        time.sleep(0.002)
    first = time.perf_counter() - began
    worker = pool._workers[0]
    out = {"first_worker_s": first, "server_rss_mb": rss_mb(pool._server.process.pid),
           "worker_rss_mb": rss_mb(worker.pid), "worker_private_mb": private_mb(worker.pid)}
    began = time.perf_counter()
    fresh = pool._new_worker()  # what a timeout costs: a fork, not an import
    fresh.became_ready(fresh.conn.recv())
    out["replacement_s"] = time.perf_counter() - began
    fresh.kill()
    pool.close()
    code = ("import time; t = time.perf_counter(); from math_verify import parse, verify; "
            "verify(parse('$x+1$'), parse('$1+x$')); print(time.perf_counter() - t); "
            "print(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])")
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    out["math_verify_process_s"] = time.perf_counter() - began
    import_s, rss_kb = result.stdout.split()
    out["math_verify_import_s"], out["math_verify_rss_mb"] = float(import_s), int(rss_kb) / 1024
    return out


def measure_hostile() -> dict:
    from fastcurl.rewards import SymbolicPool, Verifier, extract_answer
    from fastcurl.rewards.verify import DEFAULT_TIMEOUT

    cases = {
        "code in the box": ("</think> \\boxed{__import__('os').system('true')}", ["0"]),
        "power tower": ("</think> \\boxed{9^{9^{9^{9}}}}", ["1"]),
        "megabyte of text": ("Let me think. " * 80_000 + "</think> \\boxed{9^{9^{9^{8}}}}", ["7"]),
        "thousands of boxes": ("</think> " + "\\boxed{x^{2}} " * 5_000 + "\\boxed{7^{7^{7^{7}}}}", ["7"]),
    }
    out = {}
    for name, (text, golds) in cases.items():
        pool = SymbolicPool()  # cold: the call pays the start, then the deadline
        began = time.perf_counter()
        Verifier(pool=pool).verify_batch([extract_answer(text)], [golds])
        out[name] = time.perf_counter() - began
        pool.close()
    pool = SymbolicPool().start()
    while pool.ready_workers < pool.num_workers:
        time.sleep(0.01)
    towers = [f"{b}^{{{b}^{{{b}^{{{b}}}}}}}" for b in range(3, 19)]
    began = time.perf_counter()
    Verifier(pool=pool).verify_batch(towers, [["1"]] * 16)
    out["16 power towers"] = time.perf_counter() - began
    out["16 towers bound"] = 16 * DEFAULT_TIMEOUT / pool.num_workers + 5
    out["deadline"] = DEFAULT_TIMEOUT
    out["workers"] = pool.num_workers
    pool.close()
    return out


def cpu_hogs() -> list[subprocess.Popen]:
    cores = len(os.sched_getaffinity(0))
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU")
    try:
        import torch

        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:
        capability = "unknown"
    return f"{len(os.sched_getaffinity(0))} cores, {model}, CPU capability {capability}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--no-busy", action="store_true", help="Skip the runs beside CPU-bound processes.")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--batches", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        phase(args.phase, args.batches)
        return

    print(f"machine: {machine()}")
    batches = build_batches(args.size)
    print(f"batches: 2 x {args.size} completions from {TRAIN[0]} (half right, 3/4 of those rewritten)", flush=True)
    start = measure_start()
    print(f"worker start: first worker ready {start['first_worker_s']:.2f} s after start() (fork server: "
          f"{start['server_rss_mb']:.0f} MB RSS; worker {start['worker_rss_mb']:.0f} MB RSS, "
          f"{start['worker_private_mb']:.1f} MB its own); a replacement {start['replacement_s'] * 1000:.1f} ms")
    print(f"math-verify alone: import {start['math_verify_import_s']:.2f} s, a fresh interpreter "
          f"{start['math_verify_process_s']:.2f} s, {start['math_verify_rss_mb']:.0f} MB RSS", flush=True)
    loads = ["idle"] if args.no_busy else ["idle", "busy"]
    for load in loads:
        hogs = cpu_hogs() if load == "busy" else []
        try:
            ours, theirs = run_phase("fastcurl", batches), run_phase("math-verify", batches)
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
        for name in ("cold", "warm"):
            o, t = ours[name], theirs[name]
            print(f"{load:<4} {name}: fastcurl {o['per_s']:7.1f}/s ({o['seconds']:.2f} s, accuracy "
                  f"{o['accuracy']:.2%}); math-verify {t['per_s']:7.1f}/s ({t['seconds']:.2f} s, accuracy "
                  f"{t['accuracy']:.2%}); ratio {o['per_s'] / t['per_s']:.1f}x", flush=True)
        print(f"{load:<4} pool counters after both batches: {ours['stats']}")
    hostile = measure_hostile()
    bound = hostile["deadline"] + 2
    for name in ("code in the box", "power tower", "megabyte of text", "thousands of boxes"):
        print(f"hostile, cold pool: {name:<20} {hostile[name]:5.2f} s (bound {bound:.0f} s)")
    print(f"16 distinct power towers in one call, {hostile['workers']} workers: {hostile['16 power towers']:.1f} s "
          f"(bound {hostile['16 towers bound']:.0f} s)")


if __name__ == "__main__":
    main()
