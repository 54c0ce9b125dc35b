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
