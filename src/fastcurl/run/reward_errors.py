"""Rewards that cannot end or hang a run by accident: fail-soft scoring and a deadline per call.

Fail-soft: one odd completion that makes a reward function raise scores 0 instead of ending the run.

A raising batch is retried one sample at a time, so only the samples that raise score 0. Both are counted and
logged: ``rewards/<name>/batch_errors`` (the batch call raised) and ``rewards/<name>/errors`` (samples scored 0).
Past ``reward_error_limit`` sample errors the run stops with the last traceback: a reward that fails that often
is a bug, not an odd completion.

Deadline: a call that does not return within ``reward_timeout`` seconds ends the run with an error naming the
function and the stage (a hung reward would otherwise hang the run past every scheduler's grace period). A
SIGTERM that arrives during a reward call interrupts it (``RewardInterrupted``), so the run can still save.
A plain function is timed by SIGALRM, an ``async def`` one by its event loop. What neither can reach (a call
stuck inside C code, which never returns to Python, or a reward that resets the process's one alarm timer, as
``signal.alarm`` does) is ended by a watchdog thread of the interpreter (``faulthandler``):
``HARD_STOP_MARGIN_S`` after the deadline or after SIGTERM's grace, the process prints every thread's traceback
(the reward function's frame among them) and exits 1; the newest complete checkpoint stays the resume point.
"""

from __future__ import annotations

import asyncio
import faulthandler
import functools
import inspect
import logging
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

logger = logging.getLogger(__name__)


class RewardErrorLimit(RuntimeError):
    """A reward function raised more often than ``reward_error_limit`` allows."""


class RewardTimeoutError(RuntimeError):
    """A reward function did not return within ``reward_timeout`` seconds."""


class RewardInterrupted(Exception):
    """A SIGTERM arrived while a reward function was running (raised inside it by the signal handler)."""


_calls_in_progress = 0  # reward calls running in the main thread, where signal handlers run
_async_calls_in_progress = 0  # async reward calls, on TRL's event loop thread
_interrupt_requested = False
_sigterm_at: float | None = None
# The hard watchdog (faulthandler) ends the process this long after a deadline that Python could not enforce.
HARD_STOP_MARGIN_S = 12.0
# After a SIGTERM, how long a running reward call may still take before it is interrupted: a call that returns in
# time lets the update finish (and be saved); one that hangs is cut, well inside torchrun's 30 s grace.
SIGTERM_GRACE_S = 10.0


def interrupt_reward_call_after_grace() -> bool:
    """Called by the SIGTERM handler: a running reward call gets ``SIGTERM_GRACE_S`` more seconds at most."""
    global _interrupt_requested, _sigterm_at
    if _calls_in_progress == 0 and _async_calls_in_progress == 0:
        return False
    _interrupt_requested, _sigterm_at = True, time.monotonic()
    if _calls_in_progress:
        remaining = signal.getitimer(signal.ITIMER_REAL)[0]
        signal.setitimer(signal.ITIMER_REAL, min(remaining, SIGTERM_GRACE_S) if remaining > 0 else SIGTERM_GRACE_S)
    _arm_hard_stop(SIGTERM_GRACE_S)
    return True


def _arm_hard_stop(seconds: float) -> None:
    """The interpreter's own watchdog thread: traceback and exit 1 after ``seconds`` plus the margin, unless
    cancelled when the reward call ends. It runs even while the main thread is stuck in C code."""
    try:
        faulthandler.dump_traceback_later(seconds + HARD_STOP_MARGIN_S, repeat=False, file=sys.__stderr__, exit=True)
    except (AttributeError, ValueError, OSError):  # no real stderr (some notebook front ends): no watchdog
        pass


def _cancel_hard_stop() -> None:
    faulthandler.cancel_dump_traceback_later()


def _timeout_message(name: str, seconds: float, where: str) -> str:
    return (f"Reward function '{name}' did not return within {seconds:g} s (reward_timeout) in {where}. Fix what it "
            "waits for (a server, a lock, a subprocess), or raise reward_timeout if it is only slow.")


def with_async_deadline(func: Callable[..., Any], seconds: float, where: Callable[[], str]) -> Callable[..., Any]:
    """An ``async def`` reward ended with :class:`RewardTimeoutError` after ``seconds``, or :class:`RewardInterrupted`
    ``SIGTERM_GRACE_S`` after a SIGTERM (cancelled on its event loop)."""
    name = getattr(func, "__name__", type(func).__name__)

    @functools.wraps(func)
    async def wrapped(*args: Any, **kwargs: Any) -> list:
        global _async_calls_in_progress
        task = asyncio.ensure_future(func(*args, **kwargs))
        started = time.monotonic()
        _async_calls_in_progress += 1
        _arm_hard_stop(seconds)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=0.2)
                if done:
                    return task.result()
                now = time.monotonic()
                if _interrupt_requested and _sigterm_at is not None and now - _sigterm_at >= SIGTERM_GRACE_S:
                    task.cancel()
                    raise RewardInterrupted(f"SIGTERM, and reward function '{name}' did not return within "
                                            f"{SIGTERM_GRACE_S:g} s")
                if now - started >= seconds:
                    task.cancel()
                    raise RewardTimeoutError(_timeout_message(name, seconds, where()))
        finally:
            _async_calls_in_progress -= 1
            _cancel_hard_stop()

    wrapped.fastcurl_deadline = True  # type: ignore[attr-defined]
    return wrapped


def _fatal(error: BaseException) -> bool:
    return isinstance(error, (MemoryError, RewardErrorLimit, RewardTimeoutError, RewardInterrupted)) or (
        type(error).__name__ == "OutOfMemoryError")


def _plain(func: Any) -> bool:
    """A reward function we may wrap: reward models and async functions are TRL's to call as they are."""
    from torch import nn

    return callable(func) and not isinstance(func, nn.Module) and not inspect.iscoroutinefunction(func)


def fail_soft_reward(func: Callable[..., list], limit: int, counts: dict[str, int]) -> Callable[..., list]:
    """``func`` wrapped: a raising sample scores 0, counted in ``counts[name]`` and ``counts[name + ':batch']``."""
    name = getattr(func, "__name__", type(func).__name__)
    counts.setdefault(name, 0)
    counts.setdefault(f"{name}:batch", 0)

    @functools.wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> list:
        try:
            return func(*args, **kwargs)
        except Exception as error:
            if _fatal(error):
                raise
            counts[f"{name}:batch"] += 1
            logger.warning(f"Reward function '{name}' raised on a batch ({error!r}); retrying it sample by sample.")
        size = len(kwargs["completions"])
        scores: list = []
        for i in range(size):
            one = {k: (v[i : i + 1] if isinstance(v, list) and len(v) == size else v) for k, v in kwargs.items()}
            try:
                scores.extend(func(*args, **one))
            except Exception as error:
                if _fatal(error):
                    raise
                counts[name] += 1
                scores.append(0.0)
                if counts[name] > limit:
                    raise RewardErrorLimit(
                        f"Reward function '{name}' raised {counts[name]} times (reward_error_limit={limit}); "
                        f"the last error:\n{''.join(traceback.format_exception(error))}"
                    ) from error
                logger.warning(f"Reward function '{name}' raised on one sample ({error!r}); scored 0.")
        return scores

    wrapped.fastcurl_fail_soft = True  # type: ignore[attr-defined]
    return wrapped


class FailSoftRewards(TrainerCallback):
    """Wraps the trainer's reward functions (not reward models) with :func:`fail_soft_reward` and logs the counts."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts: dict[str, int] = {}

    def on_run_begin(self, trainer: Any) -> None:
        trainer.reward_funcs = [
            fail_soft_reward(f, self.limit, self.counts) if _plain(f) and not getattr(f, "fastcurl_fail_soft", False)
            else f
            for f in trainer.reward_funcs
        ]

    def on_metrics(self, trainer: Any, logs: dict[str, float], training: bool) -> None:
        if training and "loss" in logs:
            for key, count in self.counts.items():
                name, _, batch = key.partition(":")
                logs[f"rewards/{name}/{'batch_errors' if batch else 'errors'}"] = float(count)


def with_deadline(func: Callable[..., list], seconds: float, where: Callable[[], str]) -> Callable[..., list]:
    """``func`` ended with :class:`RewardTimeoutError` after ``seconds`` (in the main thread, by SIGALRM)."""
    name = getattr(func, "__name__", type(func).__name__)

    @functools.wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> list:
        global _calls_in_progress
        if threading.current_thread() is not threading.main_thread():
            return func(*args, **kwargs)  # no timer outside the main thread (a notebook's worker thread)

        def expire(signum, frame):
            if _interrupt_requested:
                raise RewardInterrupted(f"SIGTERM, and reward function '{name}' did not return within "
                                        f"{SIGTERM_GRACE_S:g} s")
            raise RewardTimeoutError(_timeout_message(name, seconds, where()))

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        _arm_hard_stop(seconds)
        _calls_in_progress += 1
        try:
            return func(*args, **kwargs)
        finally:
            _calls_in_progress -= 1
            _cancel_hard_stop()
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    wrapped.fastcurl_deadline = True  # type: ignore[attr-defined]
    return wrapped


class RewardDeadline(TrainerCallback):
    """Wraps the trainer's reward functions with :func:`with_deadline` for the duration of the run."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_run_begin(self, trainer: Any) -> None:
        global _interrupt_requested, _sigterm_at
        _interrupt_requested, _sigterm_at = False, None

        def where() -> str:
            plan = trainer.curriculum.current if trainer.curriculum_active else None
            stage = f"stage {plan.index + 1} '{plan.name}'" if plan else "training"
            return f"{stage}, update {trainer.state.global_step + 1}"

        def timed(f: Any) -> Any:
            if getattr(f, "fastcurl_deadline", False):
                return f
            if inspect.iscoroutinefunction(f):
                return with_async_deadline(f, self.seconds, where)
            return with_deadline(f, self.seconds, where) if _plain(f) else f

        trainer.reward_funcs = [timed(f) for f in trainer.reward_funcs]
