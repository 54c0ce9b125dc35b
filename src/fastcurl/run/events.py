"""What connects a trainer to its run callbacks: the run's events, a stage's end, ``train()`` wrapped by them.

:class:`RunEvents` is a base of ``CurriculumGRPOTrainer`` (the trainer itself keeps the stage mechanism). It sends
each run event (see ``fastcurl.run``) to every callback that implements it, in their order; ends a stage with
``on_stage_save`` and ``on_stage_end``; on resume asks the callbacks whether a kill cut a stage's end short; and
wraps ``train()`` in ``on_run_begin`` / ``on_run_exit`` / ``on_run_end``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..errors import MissingRunFileError
from .checkpoints import find_last_checkpoint, save_last_complete_update, write_checkpoint
from .console import out_of_memory_error, quiet_library_bars, verbose
from .manifests import stage_record
from .reward_errors import RewardInterrupted
from .signals import GracefulStop
from .stage_checkpoints import save_final_model

logger = logging.getLogger(__name__)


class RunEvents:
    """The run's side of the trainer: its events, stage ends, ``train()``, the final model."""

    def run_callback(self, kind: type) -> Any:
        """The attached callback of class ``kind`` (say ``fastcurl.run.NoLearningGuard``), or None."""
        return next((c for c in self.callback_handler.callbacks if isinstance(c, kind)), None)

    def _run_event(self, event: str, **kwargs: Any) -> None:
        """A run event to every callback that implements it, in their order."""
        for callback in self.callback_handler.callbacks:
            handler = getattr(callback, event, None)
            if handler is not None:
                handler(self, **kwargs)

    def _finish_stage(self, plan: Any, seconds: float) -> None:
        """Stage end: ``on_stage_save`` (the stage checkpoint, ``StageCheckpoints``), then ``on_stage_end``."""
        record = stage_record(self, plan, seconds)
        self._run_event("on_stage_save", plan=plan, record=record)
        self._run_event("on_stage_end", plan=plan, record=record)

    def _complete_stage_end(self, index: int) -> None:
        """A run killed between stage ``index``'s last update and the end of its stage end finishes that end now
        (the resumed weights are that stage's final policy), when a run callback finds its part missing."""
        plan = self.curriculum.plans[index]
        if any(c.stage_end_missing(self, plan) for c in self.callback_handler.callbacks
               if hasattr(c, "stage_end_missing")):
            logger.warning(f"Stage {index + 1} ended but its stage checkpoint or record is missing; writing it now.")
            self._finish_stage(plan, 0.0)

    def save_checkpoint_safely(self, write: Callable[[], None], run_dir: str) -> None:
        """transformers' checkpoint write, proven complete before it counts (``run.checkpoints``)."""
        write_checkpoint(self, write, Path(run_dir) / f"checkpoint-{self.state.global_step}")

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any) -> Any:
        """TRL's train, with the run events around it; ``resume_from_checkpoint=True``: the newest complete one."""
        if resume_from_checkpoint is True:
            found = find_last_checkpoint(self.args.output_dir)
            if found is None:
                raise MissingRunFileError(f"No complete checkpoint in {self.args.output_dir} to resume from.")
            resume_from_checkpoint = str(found)
        try:
            self._run_event("on_run_begin")
            with quiet_library_bars(not verbose(self.args)):
                output = super().train(resume_from_checkpoint, *args, **kwargs)
        except RewardInterrupted:  # SIGTERM during a reward call that might never return
            save_last_complete_update(self)
            output = None
        finally:
            self._run_event("on_run_exit")
        self._run_event("on_run_end")
        return output

    @property
    def stopped_by_signal(self) -> bool:
        stop = self.run_callback(GracefulStop)
        return bool(stop and stop.requested)

    def save_final_model(self, output_dir: str | None = None) -> Path:
        """The final policy in ``output_dir`` (hard links to the last stage checkpoint when it holds it)."""
        return save_final_model(self, output_dir)

    def training_step(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        try:
            return super().training_step(*args, **kwargs)
        except torch.OutOfMemoryError as error:
            raise out_of_memory_error(self, error) from error
