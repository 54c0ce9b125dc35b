"""The run's manifests: ``run_manifest.json`` when a fresh run starts, a ``stage_manifest.json`` record per stage."""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from ..manifest import update_stage_manifest, write_run_manifest


class ManifestCallback(TrainerCallback):
    """Writes what a resume, ``fastcurl push`` and the model card read back (main process only)."""

    def on_stage_begin(self, trainer: Any, plan: Any, resumed: bool) -> None:
        if plan.index == 0 and not resumed and trainer.args.should_save:
            write_run_manifest(trainer.args.output_dir, trainer.args.to_dict(), trainer.args.seed,
                               trainer.model.config._name_or_path)

    def on_stage_end(self, trainer: Any, plan: Any, record: dict[str, Any]) -> None:
        if trainer.args.should_save:
            update_stage_manifest(trainer.args.output_dir, record)
