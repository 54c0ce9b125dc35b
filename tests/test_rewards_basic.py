"""The reward in TRL's interface, extraction policy and safety."""

from __future__ import annotations

import time

from fastcurl.rewards import accuracy_reward, extract_answer, format_reward, is_equivalent, plain_accuracy_reward


def test_accuracy_reward_conversational_and_plain():
    completions = [
        [{"role": "assistant", "content": "reasoning </think> so \\boxed{\\dfrac{1}{2}}"}],
        [{"role": "assistant", "content": "<think> \\boxed{0.5} and then it stops"}],
        "plain </think> \\boxed{3}",
    ]
    assert accuracy_reward(completions, ground_truth=[["0.5"], ["0.5"], "3"]) == [1.0, 0.0, 1.0]
    assert plain_accuracy_reward(["The answer is \\boxed{7}."], ground_truth=[["7"]]) == [1.0]
    assert format_reward(["a </think> \\boxed{1}", "no think \\boxed{1}", "</think> nothing"]) == [1.0, 0.0, 0.0]


def test_extraction_policy():
    assert extract_answer("</think> \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert extract_answer("<think> \\boxed{3}") is None
    assert extract_answer("<think>\\boxed{3}</think> done") is None
    assert extract_answer("x </think> \\boxed 5.") == "5"
    assert extract_answer("</think> \\fbox{7}") == "7"
    assert extract_answer("</think> \\boxed{12") is None
    assert extract_answer("</think> \\boxed{1} then \\boxed{\\{1, {2}\\}}") == "\\{1, {2}\\}"


def test_hostile_answer_runs_nothing_and_returns_in_time(tmp_path):
    marker = tmp_path / "pwned"
    hostile = f"__import__('os').system('touch {marker}')"
    start = time.monotonic()
    assert not is_equivalent(hostile, "0")
    assert not is_equivalent("9^{9^{9^{9}}}", "1")
    assert not is_equivalent("1" * 100_000, "1")
    assert time.monotonic() - start < 15
    assert not marker.exists()


def test_numeric_fingerprint_decides_only_what_it_can_read():
    from fastcurl.rewards.numeric import fingerprint_equal

    assert fingerprint_equal("\\frac{2}{\\sqrt{5}}", "\\frac{2\\sqrt{5}}{5}") is True
    assert fingerprint_equal("(6,31,-2)", "(6,31,-1)") is False
    assert fingerprint_equal("15, 5", "5, 15") is True  # bare lists are unordered
    assert fingerprint_equal("(5, 15)", "(15, 5)") is False  # tuples are ordered
    assert fingerprint_equal("\\frac{1}{3}", "0.33") is False  # a decimal gold is its exact value
    assert fingerprint_equal("2^{64}", "2^{64}-1") is False  # exact rationals, not floats
    assert fingerprint_equal("\\{1, 2\\}", "(1, 2)") is False  # a set is not a tuple
    # Rational expressions in variables are decided exactly, at integer points of both signs:
    assert fingerprint_equal("x^{64}+1", "x^{64}") is False
    assert fingerprint_equal("(x+100000)^2-200000x-10^{10}", "x^2") is True
    assert fingerprint_equal("\\frac{x^2-1}{x-1}", "x+1") is True
    # A bare function argument runs to the next operator: \sin 2x is sin(2x), x\sin 2 is not.
    assert fingerprint_equal("\\sin 2x", "2\\sin x\\cos x") is True
    assert fingerprint_equal("x\\sin 2", "\\sin 2x") is False
    assert fingerprint_equal("\\sin^2 x+\\cos^2 x", "1") is True
    assert fingerprint_equal("\\sin 30^\\circ", "\\frac{1}{2}") is not False  # degrees inside a function
    for answer, gold in [
        ("\\text{teas}", "\\text{east}"),  # words are not products of letters
        ("even", "neve"),
        ("f(2)", "f(1)"),  # function notation
        ("2\\frac{1}{2}", "\\frac{5}{2}"),  # mixed number
        ("x^{64}+\\pi", "x^{64}+\\pi+10^{-9}"),  # floats agree, but beyond 2^40 they could hide a difference
        # A root, fractional power, log or inverse function of a variable has a branch: floats never accept it.
        ("\\sqrt{x^2}", "x"),
        ("\\sqrt{(x+3)^2}", "x+3"),
        ("\\sqrt{x^2y^2}", "xy"),
        ("\\sqrt{\\frac{x^2}{y^2}}", "x/y"),
        ("\\arctan(\\tan(x/2))", "x/2"),
        ("\\sin x/2", "\\sin(x/2)"),  # sin(x)/2 or sin(x/2)?
        ("y = 2x", "y = 2x"),  # equations go to the symbolic check
        ("9^{9^{9^{9}}}", "1"),  # overflow
        ("__import__('os')", "0"),
    ]:
        assert fingerprint_equal(answer, gold) is None, (answer, gold)
