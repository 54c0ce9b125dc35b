"""The symbolic pool in a training run: started in the background, ready before it is needed, a worker killed
at its deadline replaced while the others keep working, counters a trainer can log. Time bounds here are hang
detectors for a busy machine, not speed targets; the figures are in benchmarks/reward_throughput.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fastcurl.rewards import SymbolicPool, Verifier
from fastcurl.rewards.verify import _can_fork

TOWER = "9^{9^{9^{9}}}"  # the exact value has ~10^8 digits: no check finishes it before its deadline
SLACK_S = 15.0  # a busy 2-core machine


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _wait_ready(pool: SymbolicPool, limit_s: float = 60.0) -> float:
    start = time.monotonic()
    while pool.ready_workers < pool.num_workers:
        assert time.monotonic() - start < limit_s, "workers did not start"
        time.sleep(0.01)
    return time.monotonic() - start


def test_start_returns_at_once_and_workers_get_ready_in_the_background():
    pool = SymbolicPool(num_workers=2)
    try:
        began = time.monotonic()
        assert pool.start() is pool
        assert time.monotonic() - began < 1.0  # Popen and a socket write, no import on the caller's path
        _wait_ready(pool)
        assert Verifier(pool=pool).verify_batch(["\\sqrt{x^2}"], [["|x|"]]) == [True]
        assert pool.stats == {"symbolic_checks": 1, "timeouts": 0, "workers_replaced": 0, "unavailable": 0}
    finally:
        pool.close()


@pytest.mark.skipif(not _can_fork(), reason="fork server is POSIX only")
def test_workers_are_small_and_import_no_training_stack():
    pool = SymbolicPool(num_workers=1).start()
    try:
        _wait_ready(pool)
        worker = pool._workers[0]
        for pid in (pool._server.process.pid, worker.pid):
            assert _rss_mb(pid) < 150
            maps = Path(f"/proc/{pid}/maps").read_text()
            assert "torch" not in maps and "transformers" not in maps
    finally:
        pool.close()


def test_a_timed_out_worker_is_replaced_while_the_others_keep_working():
    pool = SymbolicPool(num_workers=2, timeout=2.0).start()
    try:
        _wait_ready(pool)
        verifier = Verifier(pool=pool)
        answers = [TOWER, "x^2-1", "\\sin^2(x)+\\cos^2(x)", "2\\cosh(0)", "(a+b)^2"]
        golds = [["1"], ["(x-1)(x+1)"], ["1"], ["2"], ["a^2+2ab+b^2"]]
        began = time.monotonic()
        assert verifier.verify_batch(answers, golds) == [False, True, True, True, True]
        assert time.monotonic() - began < 2.0 + SLACK_S
        assert pool.stats["timeouts"] == 1 and pool.stats["workers_replaced"] == 1
        _wait_ready(pool)  # the replacement is ready again
    finally:
        pool.close()


def test_hostile_answer_on_a_cold_pool_is_answered_after_its_deadline():
    pool = SymbolicPool(num_workers=1, timeout=2.0)  # not started: the call pays the start, then the deadline
    try:
        began = time.monotonic()
        assert pool.map([(TOWER, ["1"])]) == [False]
        assert time.monotonic() - began < 2.0 + SLACK_S
    finally:
        pool.close()


def test_sixteen_power_towers_take_about_sixteen_deadlines_over_the_workers():
    pool = SymbolicPool(num_workers=2, timeout=1.0).start()
    try:
        _wait_ready(pool)
        towers = [f"9^{{9^{{9^{{{k}}}}}}}" for k in range(2, 18)]
        began = time.monotonic()
        assert pool.map([(t, ["1"]) for t in towers]) == [False] * 16
        elapsed = time.monotonic() - began
        assert elapsed < 16 * 1.0 / 2 + SLACK_S, elapsed  # a replaced worker is forked, not imported again
        assert pool.stats["timeouts"] == 16
        assert pool.map([("x^2-1", ["(x-1)(x+1)"])]) == [True]
    finally:
        pool.close()


def test_counters_are_named_for_the_trainers_log():
    pool = SymbolicPool(num_workers=1)
    assert set(pool.stats) == {"symbolic_checks", "timeouts", "workers_replaced", "unavailable"}
