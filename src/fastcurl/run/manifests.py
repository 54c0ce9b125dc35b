"""The run's manifests: ``run_manifest.json`` when a fresh run starts, a ``stage_manifest.json`` record per stage.

A resume, ``fastcurl push`` and the model card read them back, so every write is atomic.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from .atomic import write_json_atomic

PACKAGES = ("fastcurl", "trl", "transformers", "torch", "accelerate", "datasets", "peft", "math-verify", "vllm",
            "deepspeed")


def package_versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def git_revision(directory: str | Path = ".") -> str | None:
    """The commit of the user's working directory (with ``-dirty`` when it has changes), or None."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=directory, capture_output=True, text=True,
                               timeout=5).stdout.strip()
        return rev.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def plan_record(plans: list[Any]) -> list[dict[str, Any]]:
    """The resolved plan as the run manifest keeps it: what ``fastcurl push`` and the model card name stages by."""
    return [{"index": p.index, "name": p.name, "run_name": p.run_name, "settings": p.config.to_dict(),
             "batch": vars(p.batch)} for p in plans]


def write_run_manifest(output_dir: str | Path, config: dict[str, Any], seed: int, model: str | None,
                       plan: list[dict[str, Any]] | None = None) -> Path:
    """``run_manifest.json``: the config as given, the resolved plan (names, branches, batches), versions."""
    path = Path(output_dir) / "run_manifest.json"
    write_json_atomic(
        path,
        {
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "model": model,
            "seed": seed,
            "git_revision": git_revision(),
            "packages": package_versions(),
            "config": config,
            "plan": plan or [],
        },
    )
    return path


def update_stage_manifest(output_dir: str | Path, record: dict[str, Any]) -> Path:
    """Add or replace one stage's record (keyed by its index) in ``stage_manifest.json``."""
    path = Path(output_dir) / "stage_manifest.json"
    stages = json.loads(path.read_text())["stages"] if path.exists() else []
    stages = [s for s in stages if s["index"] != record["index"]] + [record]
    write_json_atomic(path, {"stages": sorted(stages, key=lambda s: s["index"])})
    return path


def read_stage_manifest(output_dir: str | Path) -> list[dict[str, Any]]:
    """The stage records written so far (empty before the first stage ends)."""
    path = Path(output_dir) / "stage_manifest.json"
    try:
        return json.loads(path.read_text())["stages"]
    except (OSError, ValueError, KeyError):
        return []


def link_or_copy(source: Path, target: Path) -> None:
    """``target`` becomes the same file as ``source``: a hard link where the filesystem allows it, else a copy.

    Written under a temporary name and renamed, so a reader never sees a half-written ``target``.
    """
    import shutil

    if target.exists() and os.path.samefile(source, target):
        return  # already that file (a rename between two links to one file would do nothing and leave tmp)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copy2(source, tmp)
    os.replace(tmp, target)


STAGE_METRICS = {"reward": "mean_reward", "completions/mean_length": "mean_completion_length",
                 "completions/clipped_ratio": "clipped_ratio", "kl": "kl", "entropy": "entropy"}


def stage_metrics(log_history: list[dict[str, Any]], first_step: int, last_step: int) -> dict[str, float]:
    """Means of a stage's logged training metrics over its updates ``first_step``..``last_step``."""
    values: dict[str, list[float]] = {}
    for entry in log_history:
        if first_step <= entry.get("step", -1) <= last_step and "loss" in entry:
            for key, name in STAGE_METRICS.items():
                if key in entry:
                    values.setdefault(name, []).append(float(entry[key]))
    return {name: sum(v) / len(v) for name, v in values.items()}


def stage_record(trainer: Any, plan: Any, seconds: float, checkpoint: Path | None = None) -> dict[str, Any]:
    """A finished stage's entry in ``stage_manifest.json``: what ran, on which steps, what it measured, where."""
    start = trainer.curriculum.stage_start_steps[plan.index]
    return {
        "index": plan.index,
        "name": plan.name,
        "run_name": plan.run_name,
        "dataset": plan.config.dataset or "train_dataset",
        "segment": plan.config.segment,
        "dataset_size": len(trainer.stage_datasets[plan.index]),
        "settings": plan.config.to_dict(),
        "batch": vars(plan.batch),
        "first_global_step": start + 1,
        "last_global_step": trainer.state.global_step,
        "seconds": round(seconds, 2),
        "metrics": stage_metrics(trainer.state.log_history, start + 1, trainer.state.global_step),
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "ended_by": trainer.curriculum.end_reason(plan.index),
        "dropped_solved": (trainer.solved_prompts.dropped.get(plan.index)
                           if getattr(trainer, "solved_prompts", None) is not None else None),
    }


def reward_names(reward_funcs: list[Any]) -> list[str]:
    """Each reward by its import path (``fastcurl.rewards.accuracy_reward``), a reward model by its name."""
    import inspect

    from .. import rewards

    names = []
    for func in reward_funcs:
        func = inspect.unwrap(func)
        config = getattr(func, "config", None)
        name = getattr(func, "__name__", type(func).__name__)
        if config is not None and getattr(config, "_name_or_path", None):
            names.append(config._name_or_path)
        elif getattr(func, "__module__", "").startswith("fastcurl.rewards") and hasattr(rewards, name):
            names.append(f"fastcurl.rewards.{name}")  # its public name; also the think-policy variant made per run
        else:
            names.append(f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', name)}")
    return names


class ManifestCallback(TrainerCallback):
    """Writes what a resume, ``fastcurl push`` and the model card read back (main process only)."""

    def on_stage_begin(self, trainer: Any, plan: Any, resumed: bool) -> None:
        if plan.index == 0 and not resumed and trainer.args.should_save:
            given = {**(getattr(trainer, "args_as_given", None) or trainer.args.to_dict()),
                     "reward_funcs": reward_names(trainer.reward_funcs)}  # the model card names them
            write_run_manifest(trainer.args.output_dir, given, trainer.args.seed,
                               trainer.model.config._name_or_path, plan_record(trainer.curriculum.plans))

    def on_stage_end(self, trainer: Any, plan: Any, record: dict[str, Any]) -> None:
        if trainer.args.should_save:
            update_stage_manifest(trainer.args.output_dir, record)

    def stage_end_missing(self, trainer: Any, plan: Any) -> bool:
        return plan.index not in {s["index"] for s in read_stage_manifest(trainer.args.output_dir)}
