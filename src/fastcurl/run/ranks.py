"""Every rank must run the same schedule on the same data; a mismatch would hang a collective hours later."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from transformers import TrainerCallback

from ..errors import RunInputError


class RankAgreement(TrainerCallback):
    """At the start of ``train()`` on several processes: a digest of the stages and their prompts, compared."""

    def on_run_begin(self, trainer: Any) -> None:
        if trainer.accelerator.num_processes < 2 or not trainer.curriculum_active:
            return
        from accelerate.utils import gather_object

        plans = trainer.curriculum.plans
        digest = hashlib.sha256(json.dumps([p.config.to_dict() for p in plans], sort_keys=True, default=str).encode())
        sizes = []
        for dataset in trainer.stage_datasets:
            sizes.append(len(dataset))
            for prompt in dataset["prompt"]:
                digest.update(prompt[-1]["content"].encode())
        everyone = gather_object([f"{digest.hexdigest()[:12]} (stage sizes {sizes})"])
        if len(set(everyone)) > 1:
            listing = "; ".join(f"rank {r}: {v}" for r, v in enumerate(everyone))
            raise RunInputError(
                f"The training processes disagree on the curriculum ({listing}). Every rank must load the same "
                f"recipe and the same data: check per-node paths, dataset versions and environment variables."
            )
