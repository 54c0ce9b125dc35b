"""Hub pushes of a curriculum run: each stage checkpoint to its branch, the final model to ``main``."""

from __future__ import annotations

import logging
from typing import Any

from transformers import TrainerCallback

logger = logging.getLogger(__name__)


class HubPushCallback(TrainerCallback):
    """Pushes in the background (``fastcurl.run.hub.HubPusher``) and waits for them when training ends.

    transformers' own per-checkpoint pushes to ``main`` would interleave with these, so the trainer turns
    ``push_to_hub`` off on its copy of the args when this callback is attached.
    """

    def __init__(self, pusher: Any) -> None:
        self.pusher = pusher
        self.failed: list[Any] = []  # the pushes that failed, once the run has ended (``fastcurl train`` exits 1)

    @staticmethod
    def repo_id(args: Any) -> str:
        from pathlib import Path

        return args.hub_model_id or Path(args.output_dir).name

    @classmethod
    def from_args(cls, args: Any) -> HubPushCallback:
        from .hub import HubPusher

        return cls(HubPusher(
            repo_id=cls.repo_id(args),
            run_dir=args.output_dir,
            token=args.hub_token,
            private=args.hub_private_repo,
            overwrite_branches=args.hub_overwrite_branches,
        ))

    def on_stage_end(self, trainer: Any, plan: Any, record: dict[str, Any]) -> None:
        if record.get("checkpoint"):
            self.pusher.push(
                record["checkpoint"], plan.run_name,
                f"fastcurl stage {plan.index + 1}/{len(trainer.curriculum.plans)} '{plan.name}': updates "
                f"{record['first_global_step']}-{record['last_global_step']}",
            )

    def on_run_end(self, trainer: Any) -> None:
        """After ``train``: the final model to ``main`` (unless a signal stopped the run), then wait for all."""
        if not trainer.stopped_by_signal:
            trainer.save_final_model()
            self.pusher.push(trainer.args.output_dir, "main",
                             f"fastcurl: final model after {trainer.state.global_step} updates")
        self.failed = [r for r in self.pusher.wait() if not r.ok]
        failed = self.failed
        if failed:
            logger.error(f"{len(failed)} Hub push(es) failed: {[(r.branch, r.error) for r in failed]}")
