"""fastcurl: curriculum reinforcement learning (FastCuRL) for math reasoning models, on TRL's GRPOTrainer.

Names are loaded on first use (PEP 562), so ``import fastcurl.rewards`` or ``import fastcurl.data`` (a plain TRL
user's reward, a reward worker process, ``fastcurl segment`` on a laptop) never pays for torch, transformers and
TRL; ``from fastcurl import CurriculumGRPOTrainer`` loads the training stack as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "STAGE_OVERRIDABLE_FIELDS": "fastcurl.curriculum.config",
    "FastCuRLConfig": "fastcurl.curriculum.config",
    "StageBatch": "fastcurl.curriculum.config",
    "StageConfig": "fastcurl.curriculum.config",
    "derive_stage_batch": "fastcurl.curriculum.config",
    "CurriculumCallback": "fastcurl.curriculum.callback",
    "StagePlan": "fastcurl.curriculum.plan",
    "CurriculumGRPOTrainer": "fastcurl.curriculum.trainer",
    "accuracy_reward": "fastcurl.rewards",
    "format_reward": "fastcurl.rewards",
    "is_equivalent": "fastcurl.rewards",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .curriculum.callback import CurriculumCallback
    from .curriculum.config import STAGE_OVERRIDABLE_FIELDS, FastCuRLConfig, StageBatch, StageConfig, derive_stage_batch
    from .curriculum.plan import StagePlan
    from .curriculum.trainer import CurriculumGRPOTrainer
    from .rewards import accuracy_reward, format_reward, is_equivalent


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fastcurl' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))
