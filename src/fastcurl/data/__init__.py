"""Math RL data: loading, length-aware segmentation and built-in offline problems."""

from .contamination import ContaminationMatch, contamination_report, find_contamination, normalize_problem
from .loading import (
    INSTRUCTION,
    DataError,
    add_instruction,
    filter_by_prompt_length,
    load_math_dataset,
    normalize_ground_truth,
    problem_text,
)
from .segment import SegmentCache, Segmentation, prompt_lengths, segment_by_prompt_length
from .stages import filter_stage_prompts, load_stage_datasets
from .synthetic import make_synthetic_math

__all__ = [
    "INSTRUCTION",
    "ContaminationMatch",
    "DataError",
    "SegmentCache",
    "Segmentation",
    "add_instruction",
    "contamination_report",
    "filter_by_prompt_length",
    "filter_stage_prompts",
    "load_stage_datasets",
    "find_contamination",
    "load_math_dataset",
    "make_synthetic_math",
    "normalize_ground_truth",
    "normalize_problem",
    "problem_text",
    "prompt_lengths",
    "segment_by_prompt_length",
]
