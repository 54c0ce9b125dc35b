"""Verifiable math rewards: answer extraction, equivalence and TRL-shaped reward functions.

Independent of the trainer: a plain TRL user can pass ``accuracy_reward`` to ``GRPOTrainer``.
"""

from .extract import answer_region, extract_answer, last_boxed
from .functions import (
    accuracy_reward,
    accuracy_reward_for,
    boxed_format_reward,
    completion_text,
    fastcurl_reward_funcs,
    format_reward,
    math_accuracy,
    plain_accuracy_reward,
)
from .length import StageOverlongPenalty, stage_overlong_penalty
from .normalize import normalize_answer, numbers_equal, parse_number
from .think import template_opens_think, think_policy_for
from .verify import SymbolicPool, Verifier, default_pool, default_verifier, is_equivalent

__all__ = [
    "StageOverlongPenalty",
    "SymbolicPool",
    "Verifier",
    "accuracy_reward",
    "accuracy_reward_for",
    "answer_region",
    "boxed_format_reward",
    "completion_text",
    "default_pool",
    "default_verifier",
    "extract_answer",
    "fastcurl_reward_funcs",
    "format_reward",
    "is_equivalent",
    "last_boxed",
    "math_accuracy",
    "normalize_answer",
    "numbers_equal",
    "parse_number",
    "plain_accuracy_reward",
    "stage_overlong_penalty",
    "template_opens_think",
    "think_policy_for",
]
