"""Completions are untrusted: hostile and degenerate inputs return in time, execute nothing, never raise."""

from __future__ import annotations

import time

import pytest

from fastcurl.rewards import SymbolicPool, Verifier, accuracy_reward, extract_answer, is_equivalent

LIMIT_S = 20.0  # generous for a busy 2-core CI machine; each symbolic check's own deadline is 3 s


def _smuggled(marker) -> list[str]:
    command = f"touch {marker}"
    return [
        f"__import__('os').system('{command}')",
        f"eval(\"__import__('os').system('{command}')\")",
        f"exec('import os; os.system(\"{command}\")')",
        f"(lambda: __import__('subprocess').call(['touch', '{marker}']))()",
        f"open('{marker}', 'w').write('x')",
        f"\\text{{__import__('os').system('{command}')}}",
        f"x + __import__('os').system('{command}')",
        f"getattr(__builtins__, 'ev'+'al')(\"open('{marker}','w')\")",
        f"\\input{{{marker}}}",
        f"Symbol('x').__class__.__mro__[-1].__subclasses__()",
    ]


def test_smuggled_python_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    payloads = _smuggled(marker)
    completions = [f"</think> \\boxed{{{p}}}" for p in payloads]
    start = time.monotonic()
    assert accuracy_reward(completions, ground_truth=[["0"]] * len(completions)) == [0.0] * len(completions)
    for payload in payloads:
        assert not is_equivalent(payload, "0")
    assert time.monotonic() - start < LIMIT_S
    assert not marker.exists()


@pytest.mark.parametrize(
    ("answer", "gold"),
    [
        ("9^{9^{9^{9}}}", "1"),
        ("2^{2^{2^{2^{2^{2}}}}}", "3"),
        ("10^{10^{100}}", "0"),
        ("1" * 100_000, "1"),
        ("1" * 5_000 + "/" + "7" * 5_000, "1"),
        ("(" * 5_000 + "1" + ")" * 5_000, "1"),
        ("{" * 5_000 + "1" + "}" * 5_000, "1"),
        ("\\frac{" * 2_000 + "1" + "}{2}" * 2_000, "1"),
        ("x^{" * 300 + "2" + "}" * 300, "x"),
        ("\\sqrt{" * 500 + "2" + "}" * 500, "2"),
        ("\\int_0^{\\infty} e^{-x^{1000001}} dx", "1"),
        ("\\sum_{n=1}^{10^{100}} n", "1"),
        ("1e999999999", "1"),
        ("10^{-999999999}", "0"),
    ],
)
def test_expensive_answers_return_false_within_the_limit(answer, gold):
    start = time.monotonic()
    assert Verifier().verify_batch([answer], [gold]) == [False]
    assert time.monotonic() - start < LIMIT_S


def test_degenerate_completions():
    megabyte = "Let me think. " * 80_000 + "</think> \\boxed{7}"
    unclosed = "\\boxed{" * 150_000
    nested = "</think> \\boxed{" + "{" * 100_000
    inputs = [megabyte, unclosed, nested, "", "</think>", "\\boxed", "\\boxed{}", "\x00\x01\x02 \\boxed{\x00}",
              "</think> \\boxed{\ud800}", "<think>" * 10_000, "}" * 100_000 + "\\boxed{7}"]
    start = time.monotonic()
    rewards = accuracy_reward(inputs, ground_truth=[["7"]] * len(inputs))
    assert time.monotonic() - start < LIMIT_S
    assert rewards == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert extract_answer(unclosed) is None


def test_stuck_worker_is_replaced_and_the_pool_keeps_working():
    pool = SymbolicPool(num_workers=1, timeout=0.5)
    try:
        verifier = Verifier(pool=pool)
        # sympy's factorial of a large number is slow but finite: enough to outlive a 0.5 s deadline.
        slow = "(10^{6})! - (10^{6})!"
        start = time.monotonic()
        assert verifier.verify_batch([slow, "x^2-1"], ["0", "(x-1)(x+1)"]) == [False, True]
        assert time.monotonic() - start < LIMIT_S
        assert pool.stats["timeouts"] >= 1 and pool.stats["workers_replaced"] >= 1
        assert verifier.verify_batch(["2a+2b"], ["2(a+b)"]) == [True]
    finally:
        pool.close()


def test_garbage_golds_and_answers_never_raise():
    verifier = Verifier()
    answers = [None, "", "   ", "\\", "{", "\\frac{", "$$", "\\begin{pmatrix}", "1/0", "0/0", "\\infty/\\infty"]
    golds = ["1", "", "\\", "{", "}", "\\frac{1}{0}", "[", "(", "0/0", "nan", "\\infty"]
    assert verifier.verify_batch(answers, golds) == [False] * len(answers)


def test_pool_gives_up_with_a_clear_message_when_workers_cannot_start(caplog):
    """A worker program that dies at start (math-verify missing, a broken interpreter): no endless respawn."""
    import sys

    pool = SymbolicPool(num_workers=1, command=[sys.executable, "-c", "raise SystemExit(3)"])
    with caplog.at_level("ERROR"):
        assert pool.map([("x^2-1", ["(x-1)(x+1)"])]) == [False]
    assert pool.broken and "Check that this command runs" in caplog.text
    assert pool.stats["unavailable"] == 1  # the check that found no worker is counted, not silently 0
    assert pool.map([("x", ["y"])]) == [False] and pool.stats["unavailable"] == 2


def test_a_timed_out_check_is_not_remembered_as_wrong():
    pool = SymbolicPool(num_workers=1, timeout=0.5)
    try:
        verifier = Verifier(pool=pool)
        slow = "(10^{6})! - (10^{6})!"
        assert verifier.verify_batch([slow], ["0"]) == [False]
        assert pool.stats["timeouts"] == 1
        assert not any(key[0] == slow for key in verifier.cache)  # asked again next time, not fixed at 0
    finally:
        pool.close()
