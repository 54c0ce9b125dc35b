"""The policy at each stage's end, on disk (``output_dir/stage-<N>-<name>/``): written, found and completed.

A stage checkpoint is both a result (a loadable model per stage, pushed to its Hub branch) and what a resume needs:
the next stage's KL reference is that policy. So it is written like a training checkpoint (``run.checkpoints``: a
writing sentinel, every rank's files, a marker written last) into ``.stage-<N>-<name>.tmp`` and then renamed into
place, and a run killed between a stage's last update and the end of this write finishes it when resumed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ..errors import MissingRunFileError
from .checkpoints import WRITING, complete_directory, link_policy_files, mark_complete, publish_directory
from .manifests import read_stage_manifest


def stage_checkpoint_dir(trainer: Any, index: int) -> Path:
    return Path(trainer.args.output_dir) / trainer.curriculum.plans[index].run_name


class StageCheckpoints(TrainerCallback):
    """Writes the policy at each stage's end (with ``save_stage_checkpoints``) in the run event ``on_stage_save``,
    which comes before ``on_stage_end``: the record the other callbacks get names the checkpoint.

    Left out, no stage directory is written, and a run resumed inside stage 2 or later cannot restore its KL
    reference (``restore_reference`` says so).
    """

    def on_stage_save(self, trainer: Any, plan: Any, record: dict[str, Any]) -> None:
        if not trainer.args.save_stage_checkpoints:
            return
        checkpoint = stage_checkpoint_dir(trainer, plan.index)
        staged = checkpoint.with_name(f".{checkpoint.name}.tmp")
        if trainer.args.should_save:
            shutil.rmtree(staged, ignore_errors=True)
            staged.mkdir(parents=True)
            (staged / WRITING).touch()
        trainer.save_model(str(staged))
        trainer.accelerator.wait_for_everyone()
        if trainer.args.should_save:
            mark_complete(staged)
            publish_directory(staged, checkpoint)
        trainer.accelerator.wait_for_everyone()
        record["checkpoint"] = str(checkpoint)

    def stage_end_missing(self, trainer: Any, plan: Any) -> bool:
        """Whether a resumed run must write stage ``plan``'s end again (it was killed before the end was written)."""
        return bool(trainer.args.save_stage_checkpoints) and complete_directory(
            stage_checkpoint_dir(trainer, plan.index)) is None


def restore_reference(trainer: Any, index: int) -> None:
    """After a resume inside stage ``index``: its reference is the policy saved at the previous stage's end."""
    from trl.trainer.callbacks import SyncRefModelCallback

    previous = complete_directory(stage_checkpoint_dir(trainer, index - 1))
    if previous is None:
        raise MissingRunFileError(
            f"Resuming inside stage {index + 1} needs its KL reference, the policy saved at the end of stage "
            f"{index} in {stage_checkpoint_dir(trainer, index - 1)}, which is missing. Keep save_stage_checkpoints "
            "on and fastcurl.run.StageCheckpoints among the run callbacks, or resume from a checkpoint of an "
            "earlier stage."
        )
    policy = trainer.accelerator.unwrap_model(trainer.model)
    saved = type(policy).from_pretrained(previous, dtype=trainer.model.dtype)
    SyncRefModelCallback.sync_target_model(saved, trainer.ref_model, alpha=1.0)


def save_final_model(trainer: Any, output_dir: str | None = None) -> Path:
    """The final policy in ``output_dir``, loadable with ``from_pretrained(output_dir)``.

    When the last stage's checkpoint already holds exactly this policy (no update since it was written), its files
    are hard-linked instead of written a second time: a finished curriculum keeps one copy on disk.
    """
    out = Path(output_dir or trainer.args.output_dir)
    if getattr(trainer, "_final_model_saved", None) == (out, trainer.state.global_step):
        return out  # the Hub push saved it already; the CLI's save after train() is then nothing to do
    source = None
    if trainer.curriculum_active and trainer.args.save_stage_checkpoints:
        last = len(trainer.curriculum.plans) - 1
        record = next((r for r in read_stage_manifest(trainer.args.output_dir) if r["index"] == last), None)
        if record is not None and record["last_global_step"] == trainer.state.global_step:
            source = stage_checkpoint_dir(trainer, last)
    if source is None or complete_directory(source) is None:
        trainer.save_model(str(out))
    elif trainer.args.should_save:
        link_policy_files(source, out)
    trainer.accelerator.wait_for_everyone()
    trainer._final_model_saved = (out, trainer.state.global_step)
    return out
