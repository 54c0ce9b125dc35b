"""SIGTERM, what Slurm, Kubernetes and torchrun send first: finish the current update, save one checkpoint, stop.

The handler only sets a flag. At each update's end the flag is reduced over all ranks, so a signal that reached
one rank stops every rank at the same update and they all take part in the one checkpoint (a rank that stopped
alone would leave the others waiting in a collective).
"""

from __future__ import annotations

import logging
import signal
from typing import Any

from transformers import TrainerCallback

logger = logging.getLogger(__name__)


def any_rank(flag: bool) -> bool:
    """``flag`` or-ed over every process of the run (itself without torch.distributed)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    value = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


class GracefulStop(TrainerCallback):
    """Installed for the duration of ``train()`` (``on_run_begin``/``on_run_exit``); ``requested`` after a SIGTERM."""

    def __init__(self) -> None:
        self.requested = False  # this run stopped (on any rank) because of a signal
        self._received = False  # this process received one
        self._previous: Any = None

    def on_run_begin(self, trainer: Any) -> None:
        self.requested = self._received = False  # ``requested`` is also set by the trainer after RewardInterrupted
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread (a notebook worker thread): nothing to install
            self._previous = None

    def on_run_exit(self, trainer: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def on_run_end(self, trainer: Any) -> None:
        """Under ``fastcurl launch``, tell the launcher this rank saved its checkpoint and stops (exit 0 there)."""
        from pathlib import Path

        from .checkpoints import complete_directory
        from .launch import report_clean_stop

        if self.requested:
            checkpoint = Path(trainer.args.output_dir) / f"checkpoint-{trainer.state.global_step}"
            if complete_directory(checkpoint) is not None:
                report_clean_stop(trainer.state.global_step, str(checkpoint))

    def _handle(self, signum, frame) -> None:
        from .reward_errors import SIGTERM_GRACE_S, interrupt_reward_call_after_grace

        self._received = True
        if interrupt_reward_call_after_grace():  # it may never return; if it does not, the last update is saved
            logger.warning(f"SIGTERM received during a reward call: it has {SIGTERM_GRACE_S:g} s to return, then "
                           "the run saves its last complete update and stops.")
            return
        logger.warning("SIGTERM received: saving a checkpoint after the current update, then stopping.")

    def on_step_end(self, args, state, control, **kwargs):
        if any_rank(self._received):
            self.requested = True
            control.should_save = True
            control.should_training_stop = True
        return control
