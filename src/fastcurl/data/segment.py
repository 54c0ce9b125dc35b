"""Length-aware data segmentation, FastCuRL's first idea: short problems train with short contexts.

The threshold is the mean raw problem length in characters (the problem without the appended instruction).
L1 holds the problems at or below it, L3 those above, L2 all of them. On DeepScaleR's 40,315 problems this
reproduces FastCuRL's published split exactly: 24,976 / 15,339 problems, mean lengths 148.65 / 247.24 / 407.78.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from datasets import Dataset

from .loading import INSTRUCTION, problem_text


@dataclass
class Segmentation:
    """The segments of one dataset, their lengths and the thresholds that made them."""

    segments: dict[str, Dataset]
    lengths: np.ndarray
    thresholds: list[float]
    unit: str
    indices: dict[str, np.ndarray] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Dataset:
        return self.segments[name]

    def save(self, out_dir: str | Path, progress: bool = False) -> dict[str, Path]:
        """Write each segment as ``<name>.parquet``; ``load_math_dataset`` and stage configs read them back."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        items: Any = self.segments.items()
        if progress:
            from tqdm.auto import tqdm

            items = tqdm(items, total=len(self.segments), desc="writing segments", unit="segment")
        paths = {}
        for name, segment in items:
            paths[name] = out / f"{name}.parquet"
            pq.write_table(segment.with_format("arrow")[:], paths[name])
        return paths

    def stats(self) -> dict[str, Any]:
        """Counts, mean and percentile lengths per segment (the paper's Table 2 plus percentiles)."""
        out: dict[str, Any] = {"unit": self.unit, "thresholds": self.thresholds, "segments": {}}
        for name, idx in self.indices.items():
            values = self.lengths[idx]
            out["segments"][name] = {
                "count": int(len(idx)),
                "mean_length": float(values.mean()) if len(values) else 0.0,
                **{f"p{q}": float(np.percentile(values, q)) if len(values) else 0.0 for q in (10, 50, 90, 99)},
                "min": int(values.min()) if len(values) else 0,
                "max": int(values.max()) if len(values) else 0,
            }
        return out


def prompt_lengths(
    dataset: Dataset,
    instruction: str | None = INSTRUCTION,
    tokenizer: Any = None,
    progress: bool = False,
) -> np.ndarray:
    """Raw problem length per row: characters, or tokens of the raw problem when a tokenizer is given."""
    texts = [problem_text(p, instruction) for p in dataset["prompt"]]
    if tokenizer is None:
        return np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    chunks = range(0, len(texts), 2048)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="tokenizing problems", unit="chunk")
    counts = []
    for start in chunks:
        ids = tokenizer(texts[start : start + 2048], add_special_tokens=False)["input_ids"]
        counts.extend(len(x) for x in ids)
    return np.array(counts, dtype=np.int64)


def segment_by_prompt_length(
    dataset: Dataset,
    *,
    num_segments: int = 2,
    instruction: str | None = INSTRUCTION,
    tokenizer: Any = None,
    lengths: np.ndarray | None = None,
    progress: bool = False,
) -> Segmentation:
    """Split by raw prompt length.

    With ``num_segments=2`` (FastCuRL): L1 = length <= mean, L3 = length > mean, L2 = everything. With
    ``num_segments=k > 2``: quantile bins Q1..Qk (each bin holds lengths in (q_{i-1}, q_i]) plus ``all``.
    Lengths are characters, or tokens when a ``tokenizer`` is given.
    """
    if len(dataset) == 0:
        raise ValueError("Cannot segment an empty dataset.")
    if num_segments < 2:
        raise ValueError(f"num_segments must be at least 2, got {num_segments}.")
    if lengths is None:
        lengths = prompt_lengths(dataset, instruction, tokenizer, progress=progress)
    unit = "tokens" if tokenizer is not None else "characters"
    order = np.arange(len(lengths))
    if num_segments == 2:
        threshold = float(lengths.mean())
        indices = {"L1": order[lengths <= threshold], "L2": order, "L3": order[lengths > threshold]}
        thresholds = [threshold]
    else:
        thresholds = [float(q) for q in np.quantile(lengths, np.arange(1, num_segments) / num_segments)]
        bins = np.searchsorted(np.array(thresholds), lengths, side="left")
        indices = {f"Q{i + 1}": order[bins == i] for i in range(num_segments)}
        indices["all"] = order
    segments = {name: dataset.select(idx) for name, idx in indices.items()}
    return Segmentation(segments=segments, lengths=lengths, thresholds=thresholds, unit=unit, indices=indices)


class SegmentCache:
    """Computes each source's split once, so stages naming L1, L2 and L3 of one source share it."""

    def __init__(self) -> None:
        self._cache: dict[Any, Segmentation] = {}

    def get(self, key: Any, dataset_fn: Callable[[], Dataset]) -> Segmentation:
        if key not in self._cache:
            self._cache[key] = segment_by_prompt_length(dataset_fn())
        return self._cache[key]
