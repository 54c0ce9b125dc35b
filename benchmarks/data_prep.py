"""Time to load and segment DeepScaleR's 40,315 problems (target: under 2 s on a 2-core machine, load included).

    python benchmarks/data_prep.py [--file ../shared/data/fastcurl/train/train_L2.parquet] [--repeats 5]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

from fastcurl.data import load_math_dataset, segment_by_prompt_length

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "fastcurl" / "train" / "train_L2.parquet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", type=Path, default=DEFAULT)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        split = segment_by_prompt_length(load_math_dataset(args.file))
        times.append(time.perf_counter() - start)
    stats = split.stats()["segments"]
    counts = ", ".join(f"{k} {v['count']} (mean {v['mean_length']:.2f} chars)" for k, v in sorted(stats.items()))
    median = statistics.median(times)
    print(f"load + segment {args.file.name}: median {median:.3f} s (min {min(times):.3f}, max {max(times):.3f}) "
          f"over {args.repeats} runs; target 2 s, ratio to target {median / 2.0:.2f}")
    print(f"segments: {counts}")


if __name__ == "__main__":
    main()
