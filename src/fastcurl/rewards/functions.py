"""Reward functions in TRL's interface: ``f(completions, **dataset_columns) -> list[float]``.

Pass them as ``reward_funcs`` to ``GRPOTrainer`` or ``CurriculumGRPOTrainer``. They need the dataset's
``ground_truth`` column; TRL hands every dataset column to reward functions as a keyword argument.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .extract import ThinkPolicy, answer_region, extract_answer, last_boxed
from .verify import default_verifier


def completion_text(completion: Any) -> str:
    """The generated text of a plain (str) or conversational (list of messages) completion."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    if isinstance(completion, Sequence):
        return "".join(completion_text(m) for m in completion if not isinstance(m, dict) or m.get("role") != "user")
    return str(completion)


def math_accuracy(
    completions: Sequence[Any], ground_truth: Sequence[str | Iterable[str]], think: ThinkPolicy = "auto"
) -> list[float]:
    """1.0 when the last boxed answer in the answer region matches a gold, else 0.0."""
    answers = [extract_answer(completion_text(c), think) for c in completions]
    return [float(v) for v in default_verifier().verify_batch(answers, ground_truth)]


def accuracy_reward(completions: Sequence[Any], ground_truth: Sequence[Any], **kwargs: Any) -> list[float]:
    """FastCuRL's reward: 1 when the last ``\\boxed{}`` after ``</think>`` equals the ground truth, else 0.

    Completions without a think block are graded on their whole text; one cut off inside ``<think>`` gets 0.
    """
    return math_accuracy(completions, ground_truth, think="auto")


def accuracy_reward_for(think: ThinkPolicy) -> Any:
    """FastCuRL's accuracy reward with a fixed answer-region policy, named ``accuracy_reward`` for TRL's logs.

    ``accuracy_reward_for(think_policy_for(tokenizer))`` is what the trainer and ``fastcurl eval`` use: with an
    R1-style template (``<think>`` in the prompt) a completion without ``</think>`` scores 0.
    """

    def accuracy_reward(completions: Sequence[Any], ground_truth: Sequence[Any], **kwargs: Any) -> list[float]:
        return math_accuracy(completions, ground_truth, think=think)

    accuracy_reward.think_policy = think  # type: ignore[attr-defined]
    accuracy_reward.__doc__ = f"FastCuRL's accuracy reward, answer region policy '{think}'."
    return accuracy_reward


def plain_accuracy_reward(completions: Sequence[Any], ground_truth: Sequence[Any], **kwargs: Any) -> list[float]:
    """Accuracy for models that do not think in tags: the last boxed answer anywhere in the text."""
    return math_accuracy(completions, ground_truth, think="none")


def format_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """1 when the think block is closed and a boxed answer follows it, else 0."""
    scores = []
    for completion in completions:
        region = answer_region(completion_text(completion), think="required")
        scores.append(float(region is not None and last_boxed(region) is not None))
    return scores


def boxed_format_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """1 when the completion ends with a complete boxed answer (no think block needed), else 0."""
    return [float(last_boxed(completion_text(c)) is not None) for c in completions]


def fastcurl_reward_funcs() -> list:
    """The reward FastCuRL trains with: accuracy alone (format is implied by needing a boxed answer after think)."""
    return [accuracy_reward]
