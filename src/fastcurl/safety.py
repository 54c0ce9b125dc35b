"""Crash safety: complete-only checkpoint discovery, SIGTERM handling, fault injection, fail-soft rewards.

A FastCuRL run is days long. Whatever kills it (a preemption, a SIGKILL, a full disk, a reward that raises on one
odd completion), the newest *complete* checkpoint must resume it exactly, and one bad sample must not end it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import signal
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

logger = logging.getLogger(__name__)

STAGING_DIR = ".staging"
FAULT_ENV = "FASTCURL_FAULT"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def is_complete_checkpoint(path: Path) -> bool:
    """A checkpoint is complete when its trainer state (written last) exists and parses."""
    try:
        json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def find_last_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete ``checkpoint-N`` in ``output_dir``; half-written ones and the staging area are skipped.

    transformers' ``get_last_checkpoint`` only looks at names, so it would resume from a checkpoint a crash cut
    short.
    """
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = []
    for child in root.iterdir():
        match = _CHECKPOINT.match(child.name)
        if match and child.is_dir():
            if is_complete_checkpoint(child):
                found.append((int(match.group(1)), child))
            else:
                logger.warning(f"Ignoring incomplete checkpoint {child} (no readable trainer_state.json).")
    return max(found)[1] if found else None


def fault_point(name: str, step: int) -> None:
    """Die here with SIGKILL when ``FASTCURL_FAULT=<name>:<step>`` says so (tests of kill-anywhere resume)."""
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return
    point, _, at = spec.partition(":")
    if point == name and (not at or int(at) == step):
        os.kill(os.getpid(), signal.SIGKILL)


class FaultInjectionCallback(TrainerCallback):
    """``mid_step:N`` dies during update N, after its generation and backward pass, before the optimizer step."""

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        fault_point("mid_step", state.global_step + 1)


class GracefulStop(TrainerCallback):
    """On SIGTERM (what Slurm and Kubernetes send first): finish the current update, save a checkpoint, stop.

    The handler only sets a flag; the checkpoint is written by the trainer's own save path at the step end.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def install(self) -> None:
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread (a notebook worker thread): nothing to install
            self._previous = None

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def _handle(self, signum, frame) -> None:
        self.requested = True
        logger.warning("SIGTERM received: saving a checkpoint after the current update, then stopping.")

    def on_step_end(self, args, state, control, **kwargs):
        if self.requested:
            control.should_save = True
            control.should_training_stop = True
        return control


class RewardErrorLimit(RuntimeError):
    """A reward function raised more often than ``reward_error_limit`` allows."""


def fail_soft_reward(func: Callable[..., list], limit: int, counts: dict[str, int]) -> Callable[..., list]:
    """Wrap a reward function so that a sample it raises on scores 0 instead of ending the run.

    A raising batch is retried one sample at a time, so only the samples that raise score 0; each is counted in
    ``counts[name]`` (logged as ``rewards/<name>/errors``). Past ``limit`` errors the run stops with the last
    traceback: a reward that fails that often is a bug, not an odd completion.
    """
    name = getattr(func, "__name__", type(func).__name__)
    counts.setdefault(name, 0)

    @functools.wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> list:
        try:
            return func(*args, **kwargs)
        except (MemoryError, RewardErrorLimit):
            raise
        except Exception as error:
            if type(error).__name__ == "OutOfMemoryError":
                raise
        size = len(kwargs["completions"])
        scores: list = []
        for i in range(size):
            one = {k: (v[i : i + 1] if isinstance(v, list) and len(v) == size else v) for k, v in kwargs.items()}
            try:
                scores.extend(func(*args, **one))
            except MemoryError:
                raise
            except Exception as error:
                counts[name] += 1
                scores.append(0.0)
                if counts[name] > limit:
                    raise RewardErrorLimit(
                        f"Reward function '{name}' raised {counts[name]} times (reward_error_limit={limit}); "
                        f"the last error:\n{''.join(traceback.format_exception(error))}"
                    ) from error
                logger.warning(f"Reward function '{name}' raised on one sample ({error!r}); scored 0.")
        return scores

    return wrapped
