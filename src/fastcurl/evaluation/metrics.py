"""pass@k and the response statistics FastCuRL reports, from per-sample records."""

from __future__ import annotations

import re
from collections.abc import Iterable
from math import comb
from typing import Any

_WAIT = re.compile(r"\bwait\b", re.IGNORECASE)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one prompt with ``c`` correct of ``n`` samples: 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def count_wait(text: str) -> int:
    """How often the model says "wait", the self-correction marker the paper counts."""
    return len(_WAIT.findall(text))


def summarize(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Per-benchmark metrics from sample records (``prompt_id``, ``correct``, ``length``, ``completion``).

    pass@1 is the mean over prompts of the share of correct samples (FastCuRL's "pass@1 averaged over 16
    samples"); pass@k uses the unbiased estimator for every power of two up to the samples per prompt.
    """
    by_prompt: dict[Any, list[dict[str, Any]]] = {}
    for record in records:
        by_prompt.setdefault(record["prompt_id"], []).append(record)
    if not by_prompt:
        return {"prompts": 0, "samples": 0}
    n = min(len(v) for v in by_prompt.values())
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128) if k <= n]
    samples = [r for v in by_prompt.values() for r in v]
    correct = [r for r in samples if r["correct"]]
    wrong = [r for r in samples if not r["correct"]]

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    result = {
        "prompts": len(by_prompt),
        "samples": len(samples),
        "samples_per_prompt": n,
        **{
            f"pass@{k}": mean([pass_at_k(len(v), sum(bool(r["correct"]) for r in v), k) for v in by_prompt.values()])
            for k in ks
        },
        "mean_length": mean([r["length"] for r in samples]),
        "mean_length_correct": mean([r["length"] for r in correct]),
        "mean_length_incorrect": mean([r["length"] for r in wrong]),
        "wait_per_response": mean([count_wait(r["completion"]) for r in samples]),
        "responses_with_wait": mean([float(count_wait(r["completion"]) > 0) for r in samples]),
        "truncated": mean([float(r.get("finish") == "length") for r in samples]),
    }
    return result
