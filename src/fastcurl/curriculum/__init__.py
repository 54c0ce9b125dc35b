"""The curriculum: its config (stages as data), the resolved plan, the callback that ends stages, the trainer.

From a recipe to a training step: ``FastCuRLConfig`` holds the stages as given; ``resolve_plan`` turns them and
the process count into one ``StagePlan`` per stage (name, directory/branch, TRL batch fields); the trainer enters
each stage's plan (``CurriculumGRPOTrainer._enter_stage``) and runs it as one pass of transformers' loop until
``CurriculumCallback`` says it is over. Names are loaded on first use, so the plan needs no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CurriculumCallback": "fastcurl.curriculum.callback",
    "CurriculumGRPOTrainer": "fastcurl.curriculum.trainer",
    "FastCuRLConfig": "fastcurl.curriculum.config",
    "StageConfig": "fastcurl.curriculum.config",
    "StagePlan": "fastcurl.curriculum.plan",
    "resolve_plan": "fastcurl.curriculum.plan",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fastcurl.curriculum' has no attribute '{name}'")
    return getattr(importlib.import_module(module), name)
