"""The silent no-op guard: a GRPO run whose completions all hit the length cap learns nothing while looking fine.

When nearly every completion is truncated, every reward is 0, every group of rollouts is flat (zero variance),
every advantage is 0 and so is the gradient; loss curves stay smooth and nothing warns (TRL issues 5697 and
6263). TRL already logs both signals per step: ``completions/clipped_ratio`` and ``frac_reward_zero_std`` (the
share of flat groups). This callback watches them and speaks up, naming the stage and its cap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from transformers import TrainerCallback

logger = logging.getLogger(__name__)


class NoLearningGuard(TrainerCallback):
    """Warn (and optionally stop) when the clipped ratio and the flat-group share stay above ``threshold``.

    ``describe_stage`` returns the current stage's name and ``max_completion_length`` for the message.
    """

    def __init__(self, describe_stage: Callable[[], tuple[str, int]], threshold: float = 0.9, patience: int = 5,
                 stop: bool = False) -> None:
        self.describe_stage = describe_stage
        self.threshold, self.patience, self.stop = threshold, patience, stop
        self.streak = 0
        self.stage: str | None = None
        self.warnings: list[str] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "completions/clipped_ratio" not in logs or "frac_reward_zero_std" not in logs:
            return
        stage, cap = self.describe_stage()
        if stage != self.stage:
            self.stage, self.streak = stage, 0
        clipped, flat = float(logs["completions/clipped_ratio"]), float(logs["frac_reward_zero_std"])
        self.streak = self.streak + 1 if clipped >= self.threshold and flat >= self.threshold else 0
        if self.streak != self.patience:
            return
        message = (
            f"[fastcurl] stage '{stage}' is probably learning nothing: for {self.patience} logged steps "
            f"{clipped:.0%} of completions hit max_completion_length={cap} and {flat:.0%} of prompt groups have "
            f"identical rewards, so advantages and gradients are zero. Raise this stage's max_completion_length, "
            f"use easier data for it, or check that the reward can score a truncated answer."
        )
        self.warnings.append(message)
        logger.warning(message)
        if state.is_world_process_zero:
            print(message, flush=True)
        if self.stop:
            control.should_training_stop = True
