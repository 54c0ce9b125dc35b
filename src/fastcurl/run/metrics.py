"""Metrics a run adds to TRL's logs: validation pass@1 per eval set, the symbolic verifier pool's counters."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from transformers import TrainerCallback


def validation_sets(args: Any) -> dict[str, Any] | None:
    """The eval datasets ``args.eval_benchmarks`` names (keyed by file stem), or None when it names none."""
    if not getattr(args, "eval_benchmarks", None):
        return None
    from ..evaluation import load_benchmark

    return {Path(name).stem: load_benchmark(name, args.eval_data_dir, args.eval_limit) for name in args.eval_benchmarks}


class ValidationMetrics(TrainerCallback):
    """``eval/<set>/pass@1`` and ``eval/<set>/mean_length`` from each evaluation; an evaluation at each stage end.

    TRL's evaluation loop generates ``num_generations_eval`` completions per problem and scores them with the
    reward functions; the accuracy reward's mean over them is pass@1 averaged over those samples. With
    ``eval_on_stage_end`` the stage's manifest record gets them too (attach this before ``ManifestCallback``).
    """

    def on_metrics(self, trainer: Any, logs: dict[str, float], training: bool) -> None:
        if training:
            return
        name = next((k[len("eval_"): -len("_runtime")] for k in logs if k.startswith("eval_") and
                     k.endswith("_runtime")), "") or "eval"
        from ..curriculum.transformers_hooks import eval_metric_buffers

        metrics = eval_metric_buffers(trainer)  # read before TRL clears them
        accuracy = next((k for k in metrics if k.startswith("rewards/") and "accuracy" in k and k.endswith("/mean")),
                        "reward")
        for key, label in ((accuracy, "pass@1"), ("completions/mean_length", "mean_length")):
            values = [v for v in metrics.get(key, []) if v == v]
            if values:
                logs[f"eval/{name}/{label}"] = sum(values) / len(values)

    def on_stage_end(self, trainer: Any, plan: Any, record: dict[str, Any]) -> None:
        if not (trainer.args.eval_on_stage_end and trainer.eval_dataset is not None):
            return

        def latest() -> list[dict[str, Any]]:
            return [e for e in trainer.state.log_history if e.get("step") == trainer.state.global_step]

        if not any(k.startswith("eval/") for e in latest() for k in e):  # eval_steps may have just run
            trainer.evaluate()
        record["metrics"].update({k: v for e in latest() for k, v in e.items() if k.startswith("eval/")})


class SymbolicPoolMetrics(TrainerCallback):
    """``rewards/<accuracy reward>/{checks,timeouts,replaced,unavailable}``: the verifier pool's health."""

    def on_metrics(self, trainer: Any, logs: dict[str, float], training: bool) -> None:
        pool = getattr(sys.modules.get("fastcurl.rewards.verify"), "_POOL", None)
        if not training or "loss" not in logs or pool is None:
            return
        names = [getattr(f, "__name__", "") for f in trainer.reward_funcs if callable(f)]
        for name in (n for n in names if "accuracy" in n):
            logs.update({f"rewards/{name}/{key}": float(value) for key, value in pool.stats.items()})
