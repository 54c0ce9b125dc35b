"""Run features, each a callback: the output_dir lock, SIGTERM, rank agreement, stage checkpoints, fail-soft
rewards, metrics, the no-op guard, manifests, the stage summary line, Hub pushes.

The trainer (``fastcurl.curriculum``) keeps the stage mechanism; what a run does around it lives here. Besides
TRL's events these callbacks may implement the run's events, which the trainer sends, with itself, to every
callback that has them:

- ``on_init(args)``: the trainer is being built and no model has loaded (a run feature that cannot work fails here);
- ``on_run_begin(trainer)`` / ``on_run_exit(trainer)``: ``train()`` starts / returns or raises;
- ``on_stage_begin(trainer, plan, resumed)``: stage ``plan`` is now current (``resumed``: inside a resumed run);
- ``on_stage_save(trainer, plan, record)``: it ended; its checkpoint is written (``StageCheckpoints``) and named in
  ``record``, its manifest entry;
- ``on_stage_end(trainer, plan, record)``: then the record (steps, metrics, checkpoint) goes to every callback;
- ``stage_end_missing(trainer, plan) -> bool``: asked of each callback on resume: a kill between a stage's last
  update and the end of its ``on_stage_save``/``on_stage_end`` left its part missing, so the end is sent again;
- ``on_metrics(trainer, logs, training)``: add entries to a log before TRL's loggers see it;
- ``on_run_end(trainer)``: ``train()`` returned normally (the trainer is there to save).

``standard_run_callbacks`` is the set the CLI and a plain ``CurriculumGRPOTrainer(...)`` attach. To leave one
out, pass your own list, for example without the no-op guard::

    callbacks = [c for c in standard_run_callbacks(config) if not isinstance(c, NoLearningGuard)]
    CurriculumGRPOTrainer(..., run_callbacks=callbacks)       # or run_callbacks=[] for none at all

Hub pushes have their own switch: ``standard_run_callbacks(config, push_to_hub=False)``.
"""

from __future__ import annotations

from typing import Any

from .guard import NoLearningGuard
from .hub_push import HubPushCallback
from .lock import OutputDirLock
from .manifests import ManifestCallback
from .metrics import SymbolicPoolMetrics, ValidationMetrics
from .ranks import RankAgreement
from .reward_errors import FailSoftRewards, RewardDeadline
from .signals import GracefulStop
from .stage_checkpoints import StageCheckpoints
from .summary import StageSummaryCallback

__all__ = [
    "FailSoftRewards",
    "GracefulStop",
    "HubPushCallback",
    "ManifestCallback",
    "NoLearningGuard",
    "OutputDirLock",
    "RankAgreement",
    "RewardDeadline",
    "StageCheckpoints",
    "StageSummaryCallback",
    "SymbolicPoolMetrics",
    "ValidationMetrics",
    "standard_run_callbacks",
]


def standard_run_callbacks(args: Any, push_to_hub: bool | None = None) -> list[Any]:
    """The standard set for ``args``, in the order they run (validation adds to a stage record before it is written).

    Fail-soft rewards with ``reward_error_limit``, a deadline per reward call with ``reward_timeout``, the guard with ``noop_guard_threshold``, Hub pushes with
    ``push_to_hub`` (``push_to_hub`` here overrides ``args.push_to_hub``; pushes run on the process that saves).
    """
    callbacks: list[Any] = [OutputDirLock(), GracefulStop(), RankAgreement(), StageCheckpoints()]
    if getattr(args, "reward_error_limit", None) is not None:
        callbacks.append(FailSoftRewards(args.reward_error_limit))
    if getattr(args, "reward_timeout", None) is not None:
        callbacks.append(RewardDeadline(args.reward_timeout))
    callbacks += [ValidationMetrics(), SymbolicPoolMetrics()]
    if getattr(args, "noop_guard_threshold", None) is not None:
        callbacks.append(NoLearningGuard.from_args(args))
    callbacks += [ManifestCallback(), StageSummaryCallback()]
    push = getattr(args, "push_to_hub", False) if push_to_hub is None else push_to_hub
    if push:
        from .hub import require_online

        require_online(HubPushCallback.repo_id(args), args.output_dir)  # on every rank: all stop, none waits
    if push and args.should_save:
        callbacks.append(HubPushCallback.from_args(args))
    return callbacks
