"""The stage on screen and in trackers: its name on the progress bar, one summary line when it ends."""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback


class StageSummaryCallback(TrainerCallback):
    """``[fastcurl] stage 1/4 'L1-8k' done: steps 1-160, mean_reward ..., 812.3s`` (main process only).

    At a stage's start its name goes on the progress bar and, as text, to trackers that take it (TensorBoard,
    W&B): logged metrics are floats, so the name travels this way.
    """

    def on_stage_begin(self, trainer: Any, plan: Any, resumed: bool) -> None:
        from transformers.integrations import WandbCallback

        label = f"stage {plan.index + 1}/{len(trainer.curriculum.plans)} {plan.name}"
        for callback in trainer.callback_handler.callbacks:
            bar = getattr(callback, "training_bar", None)
            if bar is not None:
                bar.set_description(label)
            writer = getattr(callback, "tb_writer", None)
            if writer is not None:
                writer.add_text("curriculum/stage_name", label, trainer.state.global_step)
            run = _wandb_run() if isinstance(callback, WandbCallback) else None
            if run is not None:
                run.config.update({f"curriculum/stage_{plan.index + 1}": plan.name}, allow_val_change=True)
                run.summary["curriculum/stage_name"] = plan.name

    def on_stage_end(self, trainer: Any, plan: Any, record: dict[str, Any]) -> None:
        if not trainer.is_world_process_zero():
            return
        parts = [f"steps {record['first_global_step']}-{record['last_global_step']}"]
        parts += [f"{k} {v:.4g}" for k, v in record["metrics"].items()] + [f"{record['seconds']:.1f}s"]
        console_line(trainer, f"[fastcurl] stage {plan.index + 1}/{len(trainer.curriculum.plans)} '{plan.name}' done: "
                              + ", ".join(parts))


def _wandb_run() -> Any:
    """The active W&B run through wandb's public handle (``wandb.run``), not the callback's private attribute."""
    import sys

    return getattr(sys.modules.get("wandb"), "run", None)


def console_line(trainer: Any, message: str) -> None:
    """A line above the progress bar (not glued to it), or a plain print without a bar."""
    bar = next((c.training_bar for c in trainer.callback_handler.callbacks
                if getattr(c, "training_bar", None) is not None), None)
    if bar is not None:
        bar.write(message)
    else:
        print(message, flush=True)
