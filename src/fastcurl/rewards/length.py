"""A length penalty that follows the curriculum: DAPO's soft overlong punishment, bound to the current stage.

DAPO (arXiv 2503.14476, eq. 13) scores a completion 0 up to ``L_max - L_cache`` tokens, then linearly down to -1 at
``L_max``, and -1 beyond. TRL's ``get_soft_overlong_punishment`` fixes ``L_max`` when it is built, so in a
curriculum whose context grows 8K -> 16K -> 24K it would punish every completion of the later stages that is
longer than the first stage's cap. :class:`StageOverlongPenalty` takes ``L_max`` from the stage:
``CurriculumGRPOTrainer`` calls ``set_max_completion_length`` on every reward function that has it, at
construction and at each stage switch (and after a resume), and ``L_cache`` is a fraction of it.
"""

from __future__ import annotations

from typing import Any


class StageOverlongPenalty:
    """Callable reward in TRL's interface (it reads ``completion_ids``); ``buffer_fraction`` is ``L_cache / L_max``
    (DAPO's 4,096 of 20,480: 0.2)."""

    __name__ = "stage_overlong_penalty"

    def __init__(self, buffer_fraction: float = 0.2, max_completion_length: int | None = None) -> None:
        if not 0 < buffer_fraction <= 1:
            raise ValueError(f"buffer_fraction must be in (0, 1], got {buffer_fraction}.")
        self.buffer_fraction = buffer_fraction
        self.max_completion_length = max_completion_length

    def set_max_completion_length(self, length: int) -> None:
        self.max_completion_length = int(length)

    def __call__(self, completion_ids: list[list[int]], **kwargs: Any) -> list[float]:
        limit = self.max_completion_length
        if limit is None:
            raise RuntimeError("stage_overlong_penalty has no max_completion_length: use it with "
                               "CurriculumGRPOTrainer (which binds each stage's) or call set_max_completion_length.")
        cache = max(1, round(self.buffer_fraction * limit))
        free = limit - cache
        scores = []
        for ids in completion_ids:
            length = len(ids)
            scores.append(0.0 if length <= free else (free - length) / cache if length <= limit else -1.0)
        return scores


stage_overlong_penalty = StageOverlongPenalty()  # the recipe name `overlong` (reward_funcs: [accuracy, overlong])
