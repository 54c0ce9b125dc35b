"""The policy at each stage's end, on disk: written beside and renamed into place, read back on resume.

A stage checkpoint (``output_dir/stage-<N>-<name>/``) is both a result (a loadable model per stage, pushed to its
Hub branch) and what a resume needs: the next stage's KL reference is that policy. So it is written like a
training checkpoint (``run.checkpoints``: a writing sentinel, every rank's files, a marker written last) into
``.stage-<N>-<name>.tmp`` and then renamed into place, and a run killed between a stage's last update and the end
of this write finishes it when resumed.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from trl.trainer.callbacks import SyncRefModelCallback

from ..errors import MissingRunFileError
from ..run import GracefulStop, ManifestCallback
from ..run.checkpoints import (
    WRITING,
    complete_directory,
    find_last_checkpoint,
    link_policy_files,
    mark_complete,
    publish_directory,
)
from ..run.manifests import read_stage_manifest, stage_record
from .plan import StagePlan

logger = logging.getLogger(__name__)


def stage_checkpoint_dir(trainer: Any, index: int) -> Path:
    return Path(trainer.args.output_dir) / trainer.curriculum.plans[index].run_name


def write_stage_checkpoint(trainer: Any, plan: StagePlan) -> Path | None:
    """The current policy as stage ``plan``'s checkpoint (None when ``save_stage_checkpoints`` is off)."""
    if not trainer.args.save_stage_checkpoints:
        return None
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
    return checkpoint


def finish_stage(trainer: Any, plan: StagePlan, seconds: float) -> None:
    """Stage end: the stage checkpoint, then the run event ``on_stage_end`` with the stage's record."""
    checkpoint = write_stage_checkpoint(trainer, plan)
    trainer._run_event("on_stage_end", plan=plan, record=stage_record(trainer, plan, seconds, checkpoint))


def complete_interrupted_stage_end(trainer: Any, index: int) -> None:
    """A run killed between stage ``index``'s last update and the end of its stage checkpoint: finish that end.

    The resumed weights are that stage's final policy, so the stage checkpoint (needed to restore the KL
    reference on a later resume) and its manifest record are written from them.
    """
    # Without a ManifestCallback no record is kept: the stage checkpoint alone says the end was written.
    recorded = {s["index"] for s in read_stage_manifest(trainer.args.output_dir)} if trainer.run_callback(
        ManifestCallback) is not None else set(range(len(trainer.curriculum.plans)))
    written = complete_directory(stage_checkpoint_dir(trainer, index)) is not None
    if index in recorded and (written or not trainer.args.save_stage_checkpoints):
        return
    logger.warning(f"Stage {index + 1} ended but its stage checkpoint or record is missing; writing it now.")
    trainer._finish_stage(trainer.curriculum.plans[index], 0.0)


def restore_reference(trainer: Any, index: int) -> None:
    """After a resume inside stage ``index``: its reference is the policy saved at the previous stage's end."""
    previous = complete_directory(stage_checkpoint_dir(trainer, index - 1))
    if previous is None:
        raise MissingRunFileError(
            f"Resuming inside stage {index + 1} needs its KL reference, the policy saved at the end of stage "
            f"{index} in {stage_checkpoint_dir(trainer, index - 1)}, which is missing. Keep save_stage_checkpoints "
            "on, or resume from a checkpoint of an earlier stage."
        )
    policy = trainer.accelerator.unwrap_model(trainer.model)
    saved = type(policy).from_pretrained(previous, dtype=trainer.model.dtype)
    SyncRefModelCallback.sync_target_model(saved, trainer.ref_model, alpha=1.0)


def save_last_complete_update(trainer: Any) -> None:
    """A checkpoint of the state after the last finished update (an interrupted one left the weights untouched)."""
    stop = trainer.run_callback(GracefulStop)
    if stop is not None:
        stop.requested = True
    here = Path(trainer.args.output_dir) / f"checkpoint-{trainer.state.global_step}"
    if find_last_checkpoint(trainer.args.output_dir) != here:
        trainer._save_checkpoint(trainer.model, trial=None)


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
    if source is None or not source.is_dir():
        trainer.save_model(str(out))
    elif trainer.args.should_save:
        link_policy_files(source, out)
    trainer.accelerator.wait_for_everyone()
    trainer._final_model_saved = (out, trainer.state.global_step)
    return out
