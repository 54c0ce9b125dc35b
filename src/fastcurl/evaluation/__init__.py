"""Evaluation: pass@k on the FastCuRL benchmarks, graded by the package's reward verifier."""

from .backends import SamplingSettings, TransformersBackend, VLLMBackend, choose_backend
from .harness import BENCHMARK_FILES, evaluate, format_table, load_benchmark, read_records, regrade
from .metrics import count_wait, pass_at_k, summarize

__all__ = [
    "BENCHMARK_FILES",
    "SamplingSettings",
    "TransformersBackend",
    "VLLMBackend",
    "choose_backend",
    "count_wait",
    "evaluate",
    "format_table",
    "load_benchmark",
    "pass_at_k",
    "read_records",
    "regrade",
    "summarize",
]
