"""fastcurl: curriculum reinforcement learning (FastCuRL) for math reasoning models, on TRL's GRPOTrainer."""

from .config import STAGE_OVERRIDABLE_FIELDS, FastCuRLConfig, StageBatch, StageConfig, derive_stage_batch
from .curriculum import CurriculumCallback, StagePlan
from .rewards import accuracy_reward, format_reward, is_equivalent
from .trainer import CurriculumGRPOTrainer

__version__ = "0.1.0"

__all__ = [
    "STAGE_OVERRIDABLE_FIELDS",
    "CurriculumCallback",
    "CurriculumGRPOTrainer",
    "FastCuRLConfig",
    "StageBatch",
    "StageConfig",
    "StagePlan",
    "accuracy_reward",
    "derive_stage_batch",
    "format_reward",
    "is_equivalent",
]
