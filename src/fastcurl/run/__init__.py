"""Run features, each a callback: manifests, the stage summary line, Hub pushes.

The trainer keeps the stage mechanism; what a run does around it lives here, attached as callbacks. Besides
TRL's events they may implement the curriculum's events, which the trainer sends to every callback that has
them:

- ``on_stage_begin(trainer, plan, resumed)``: stage ``plan`` is now current (``resumed``: inside a resumed run);
- ``on_stage_end(trainer, plan, record)``: it ended; ``record`` is its manifest entry (steps, metrics, checkpoint).
- ``on_run_end(trainer)``: ``train()`` returned (after TRL's ``on_train_end``; the trainer is there to save).

``standard_run_callbacks`` is the set the CLI and a plain ``CurriculumGRPOTrainer(...)`` attach. To leave one
out, pass your own list: ``CurriculumGRPOTrainer(..., run_callbacks=[ManifestCallback()])`` (or ``[]``).
"""

from __future__ import annotations

from typing import Any

from .hub_push import HubPushCallback
from .manifests import ManifestCallback
from .summary import StageSummaryCallback

__all__ = ["HubPushCallback", "ManifestCallback", "StageSummaryCallback", "standard_run_callbacks"]


def standard_run_callbacks(args: Any, push_to_hub: bool | None = None) -> list[Any]:
    """Manifests and the summary line always; Hub pushes with ``push_to_hub`` (on the process that saves).

    ``push_to_hub`` overrides ``args.push_to_hub`` (the trainer turns that off on its copy of the args).
    """
    callbacks: list[Any] = [ManifestCallback(), StageSummaryCallback()]
    push = getattr(args, "push_to_hub", False) if push_to_hub is None else push_to_hub
    if push and args.should_save:
        callbacks.append(HubPushCallback.from_args(args))
    return callbacks
