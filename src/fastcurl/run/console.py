"""What a run prints: the stage lines and one progress bar by default, everything else when asked.

transformers writes a 30-key metrics dict under the bar at every update and draws its own bars for loading and
writing weights and for ``datasets.map``; interleaved with the training bar they bury the stage lines. The dicts
still reach every logger (TensorBoard, W&B, ``log_history``); on the console they appear with ``log_level: info``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from transformers.trainer_callback import ProgressCallback


def silence_library_deprecations() -> None:
    """Hide the FutureWarnings that TRL's own calls into transformers set off (``gradient_checkpointing_*``).

    They name code in TRL and transformers, not in the user's recipe, and repeat at every generation round.
    """
    import warnings

    warnings.filterwarnings(
        "ignore", message=r"`(is_gradient_checkpointing|gradient_checkpointing_(enable|disable))` is deprecated",
        category=FutureWarning,
    )


def verbose(args: Any) -> bool:
    """Whether the user asked for the detailed console (``--log_level info`` or ``debug``)."""
    get_level = getattr(args, "get_process_log_level", None)
    return callable(get_level) and get_level() <= logging.INFO


class StageProgressCallback(ProgressCallback):
    """transformers' progress bar, writing the per-update metrics dict only on the verbose console."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if verbose(args):
            super().on_log(args, state, control, logs=logs, **kwargs)


def warn(logger: logging.Logger, message: str, show: bool = True) -> None:
    """A warning seen once: printed (when ``show``), and logged where the application configured logging.

    Without any handler, Python's last-resort handler would print a logged warning to stderr a second time.
    """
    if show:
        print(message, flush=True)
    if logger.hasHandlers():
        logger.warning(message)


def set_up_console(trainer: Any) -> None:
    """The trainer's console: the precision line chosen for this machine, once, and the stage progress bar."""
    precision = getattr(trainer.args, "precision", None)
    if precision is not None and trainer.is_world_process_zero():
        print(f"[fastcurl] precision: {precision.reason}", flush=True)
    use_stage_progress(trainer)


def use_stage_progress(trainer: Any) -> None:
    """Swap the trainer's ProgressCallback for :class:`StageProgressCallback` (a no-op without a bar)."""
    handler = trainer.callback_handler
    for index, callback in enumerate(handler.callbacks):
        if type(callback) is ProgressCallback:
            replacement = StageProgressCallback()
            replacement.max_str_len = callback.max_str_len
            handler.callbacks[index] = replacement


@contextmanager
def quiet_library_bars(enabled: bool = True) -> Iterator[None]:
    """Hide transformers' weight loading/writing bars and datasets' map bars for the duration."""
    if not enabled:
        yield
        return
    import datasets
    from transformers.utils import logging as hf_logging

    transformers_on = hf_logging.is_progress_bar_enabled()
    datasets_on = datasets.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if transformers_on:
            hf_logging.enable_progress_bar()
        if datasets_on:
            datasets.enable_progress_bars()


def out_of_memory_error(trainer: Any, error: BaseException) -> BaseException:
    """An out-of-memory error that names the stage, its lengths and batch, and what to lower."""
    import torch

    plan = trainer.curriculum.current if trainer.curriculum_active else None
    where = f"stage {plan.index + 1} '{plan.name}'" if plan else "training"
    return torch.OutOfMemoryError(
        f"Out of memory in {where} with max_completion_length={trainer.max_completion_length}, "
        f"num_generations={trainer.num_generations}, per_device_train_batch_size="
        f"{trainer.args.per_device_train_batch_size}, max_prompt_length={trainer.args.max_prompt_length}. "
        "Lower per_device_train_batch_size for this stage (it is a per-stage override), enable "
        f"gradient_checkpointing, or generate on a vLLM server. Original error: {error}"
    )
