"""The silent no-op guard: a GRPO stage whose prompt groups all score alike learns nothing while looking fine.

GRPO learns from differences inside a group of rollouts. When every group is flat (zero reward variance), every
advantage is 0 and so is the gradient; loss curves stay smooth and nothing warns (TRL issues 5697 and 6263).
TRL already logs the signals per step: ``frac_reward_zero_std`` (the share of flat groups),
``completions/clipped_ratio`` and ``reward``. This callback watches them and speaks up, naming the stage and the
likely cause: completions cut off by the length cap, a reward that scores everything 0 (empty or unparseable
golds, a broken reward function), or groups that all score the same non-zero reward (data too easy, or a reward
that does not tell completions apart).
"""

from __future__ import annotations

import logging
from typing import Any

from transformers import TrainerCallback

from .console import warn

logger = logging.getLogger(__name__)


def flat_group_cause(clipped: float, mean_reward: float | None, cap: int, threshold: float) -> str:
    """Why every group scored alike, in the words of the fix."""
    if clipped >= threshold and not mean_reward:
        return (f"{clipped:.0%} of completions hit max_completion_length={cap}, so none reaches an answer. Raise this "
                "stage's max_completion_length, use easier data for it, or check that the reward can score a "
                "truncated answer.")
    if not mean_reward:
        return (f"every reward is 0 although only {clipped:.0%} of completions hit max_completion_length={cap}. Check "
                "that the ground truths are non-empty and parse (the dataset's answer column) and that the reward "
                "function can score these completions.")
    return (f"every completion of a prompt earns the same reward (mean reward {mean_reward:.3g}, {clipped:.0%} hit "
            f"max_completion_length={cap}). The data may be too easy (or too hard) for this stage, or the reward "
            "does not tell completions apart.")


class NoLearningGuard(TrainerCallback):
    """Warn (and optionally stop) when the flat-group share stays at or above ``threshold`` for ``patience`` logs.

    The count restarts at each stage; the message names the stage and its ``max_completion_length``.
    """

    def __init__(self, threshold: float = 0.9, patience: int = 5, stop: bool = False) -> None:
        self.threshold, self.patience, self.stop = threshold, patience, stop
        self.streak = 0
        self.stage: str | None = None
        self.cap: int | None = None
        self.warnings: list[str] = []

    @classmethod
    def from_args(cls, args: Any) -> NoLearningGuard:
        return cls(threshold=args.noop_guard_threshold, patience=args.noop_guard_patience, stop=args.noop_guard_stop)

    def on_stage_begin(self, trainer: Any, plan: Any, resumed: bool) -> None:
        self.stage, self.cap, self.streak = plan.name, plan.config.max_completion_length, 0

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "frac_reward_zero_std" not in logs:
            return
        stage = self.stage or "train"
        cap = self.cap or args.max_completion_length
        flat = float(logs["frac_reward_zero_std"])
        self.streak = self.streak + 1 if flat >= self.threshold else 0
        if self.streak != self.patience:
            return
        clipped = float(logs.get("completions/clipped_ratio", 0.0))
        reward = logs.get("reward")
        cause = flat_group_cause(clipped, None if reward is None else float(reward), cap, self.threshold)
        message = (
            f"[fastcurl] stage '{stage}' is probably learning nothing: for {self.patience} logged steps {flat:.0%} of "
            f"prompt groups have identical rewards, so advantages and gradients are zero: {cause}"
        )
        self.warnings.append(message)
        warn(logger, message, show=state.is_world_process_zero)
        if self.stop:
            control.should_training_stop = True
