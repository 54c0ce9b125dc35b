"""Fault injection for the subprocess tests: ``FASTCURL_FAULT=<point>:<n>`` SIGKILLs the run at one exact moment.

It lives in the tests, not in the package: imported by ``recording_reward`` (which every crash test's recipe
names), it wraps the trainer's methods in that subprocess only. The points:

- ``mid_step:N``: during update N, after its generation and backward pass, before the optimizer step;
- ``checkpoint_write:N``: checkpoint-N's files are all written, its completion marker is not;
- ``before_stage_end:N``: stage N's last update is done, its stage checkpoint not yet written;
- ``after_stage:N``: stage N's end (stage checkpoint and manifest record) is fully written.
"""

from __future__ import annotations

import os
import signal

from transformers import TrainerCallback

from fastcurl.curriculum import trainer as trainer_module
from fastcurl.run import checkpoints

SPEC = os.environ.get("FASTCURL_FAULT", "")
POINT, _, AT = SPEC.partition(":")


def die_at(point: str, number: int) -> None:
    if POINT == point and (not AT or int(AT) == number):
        os.kill(os.getpid(), signal.SIGKILL)


class _MidStep(TrainerCallback):
    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        die_at("mid_step", state.global_step + 1)


def install() -> None:
    cls = trainer_module.CurriculumGRPOTrainer
    if getattr(cls, "_fault_injection", False) or not SPEC:
        return
    cls._fault_injection = True
    original_train, original_finish = cls.train, cls._finish_stage
    original_mark = checkpoints.mark_complete

    def train(self, *args, **kwargs):
        self.add_callback(_MidStep())
        return original_train(self, *args, **kwargs)

    def finish_stage(self, plan, seconds):
        die_at("before_stage_end", plan.index + 1)
        original_finish(self, plan, seconds)
        die_at("after_stage", plan.index + 1)

    def mark_complete(path):
        die_at("checkpoint_write", int(str(path).rsplit("-", 1)[-1]))
        original_mark(path)

    cls.train, cls._finish_stage = train, finish_stage
    checkpoints.mark_complete = mark_complete


install()
