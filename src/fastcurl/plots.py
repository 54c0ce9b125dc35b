"""Training curves people look at: reward and completion length per step, stage boundaries marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_training(log_history: list[dict[str, Any]], stage_start_steps: list[int], output_dir: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = [e for e in log_history if "loss" in e and "step" in e]
    fig, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for ax, key, label in (
        (axes[0], "reward", "mean reward"),
        (axes[1], "completions/mean_length", "mean completion length (tokens)"),
    ):
        points = [(e["step"], e[key]) for e in entries if key in e]
        if points:
            ax.plot(*zip(*points), marker="o", markersize=3)
        ax.set_ylabel(label)
        for index, start in enumerate(stage_start_steps):
            ax.axvline(start + 0.5, color="gray", linestyle="--", linewidth=1)
            ax.text(start + 0.6, ax.get_ylim()[1], f"stage {index + 1}", va="top", fontsize=8, color="gray")
    axes[1].set_xlabel("optimizer step")
    fig.suptitle("fastcurl: reward and completion length by step")
    fig.tight_layout()
    path = Path(output_dir) / "training_curves.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_length_histogram(
    lengths: Any, thresholds: list[float], unit: str, path: str | Path, title: str = "prompt lengths"
) -> Path:
    """Histogram of raw prompt lengths with the segment thresholds marked (FastCuRL's Figure 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    lengths = np.asarray(lengths)
    fig, ax = plt.subplots(figsize=(8, 4))
    upper = float(np.percentile(lengths, 99.5)) if len(lengths) else 1.0
    ax.hist(np.clip(lengths, 0, upper), bins=80, color="#4C72B0")
    for threshold in thresholds:
        ax.axvline(threshold, color="#C44E52", linestyle="--", linewidth=1.5)
        ax.text(threshold, ax.get_ylim()[1] * 0.95, f" {threshold:.2f}", color="#C44E52", va="top", fontsize=9)
    ax.set_xlabel(f"raw problem length ({unit}; top 0.5% clipped)")
    ax.set_ylabel("problems")
    ax.set_title(f"{title}: {len(lengths):,} problems")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
