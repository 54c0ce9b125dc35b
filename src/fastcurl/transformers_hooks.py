"""The private parts of transformers' ``Trainer`` that the curriculum relies on, stated and checked in one place.

A curriculum runs each stage as one pass of transformers' epoch loop, so ``CurriculumGRPOTrainer`` overrides a
few private methods. transformers may rename their parameters or reorder the tuple one of them returns in any
release; silently, that would make a resume look like a fresh stage (reference and optimizer reset). So the
signatures relied on are listed here and checked when ``fastcurl.trainer`` is imported: a mismatch fails at once
with the hook's name, what was expected and what is installed, instead of misbehaving hours into a run.

Relied on (transformers 5.17 to 5.24):
- ``_run_epoch(model, epoch, train_dataloader, steps_in_epoch, num_update_steps_per_epoch, trial,
  ignore_keys_for_eval, start_time, resume_from_checkpoint, epochs_trained, steps_trained_in_current_epoch)``:
  called once per epoch, and a curriculum stage is an epoch.
- ``_init_training_state(max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint, trial)``
  returning ``(epochs_trained, steps_trained_in_current_epoch)``: where a resume starts.
- ``set_initial_training_values(args, dataloader)`` returning the seven values of :class:`TrainingValues`, in
  that order: the loop's length.
- ``_get_output_dir(trial)`` and ``_save_checkpoint(model, trial)``: where checkpoints are written.
- The attributes ``_buffered_inputs``, ``_step`` (TRL's generation buffer and micro-step counter) and
  ``_train_batch_size`` (the dataloader's batch), reset at a stage boundary.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, NamedTuple

TESTED_TRANSFORMERS = ("5.17", "5.24")

RELIED_ON_PARAMETERS: dict[str, tuple[str, ...]] = {
    "_run_epoch": (
        "model", "epoch", "train_dataloader", "steps_in_epoch", "num_update_steps_per_epoch", "trial",
        "ignore_keys_for_eval", "start_time", "resume_from_checkpoint", "epochs_trained",
        "steps_trained_in_current_epoch",
    ),
    "_init_training_state": (
        "max_steps", "num_update_steps_per_epoch", "num_train_epochs", "resume_from_checkpoint", "trial",
    ),
    "set_initial_training_values": ("args", "dataloader"),
    "_get_output_dir": ("trial",),
    "_save_checkpoint": ("model", "trial"),
    "create_scheduler": ("num_training_steps", "optimizer"),
}


class TrainingValues(NamedTuple):
    """``Trainer.set_initial_training_values``' result, by name (transformers returns it as a plain tuple)."""

    num_train_epochs: int
    num_update_steps_per_epoch: int
    num_examples: int
    num_train_samples: int
    total_train_batch_size: int
    steps_in_epoch: int | None
    max_steps: int


class TransformersDriftError(RuntimeError):
    """The installed transformers changed a private hook the curriculum relies on."""


def _returned_names(function: Any) -> tuple[str, ...] | None:
    """The names in a function's last ``return (a, b, ...)`` statement, or None when its source is unavailable."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return None
    returns = re.findall(r"return \(\s*([\w\s,]+?)\s*\)", source)
    if not returns:
        return None
    return tuple(name.strip() for name in returns[-1].split(",") if name.strip())


def drift(trainer_class: type) -> list[str]:
    """What differs between ``trainer_class`` (transformers' Trainer) and what this module relies on."""
    problems = []
    for name, expected in RELIED_ON_PARAMETERS.items():
        method = getattr(trainer_class, name, None)
        if method is None:
            problems.append(f"{name}: no longer exists")
            continue
        found = tuple(p for p in inspect.signature(method).parameters if p != "self")
        if found != expected:
            problems.append(f"{name}: expected parameters {expected}, found {found}")
    returned = _returned_names(trainer_class.set_initial_training_values)
    if returned is not None and returned != TrainingValues._fields:
        problems.append(f"set_initial_training_values: expected to return {TrainingValues._fields}, returns {returned}")
    return problems


def check_transformers(trainer_class: type | None = None) -> None:
    """Raise :class:`TransformersDriftError` naming every hook that changed; called at import of the trainer."""
    if trainer_class is None:
        from transformers import Trainer as trainer_class
    problems = drift(trainer_class)
    if problems:
        import transformers

        raise TransformersDriftError(
            f"fastcurl's curriculum relies on private hooks of transformers' Trainer that changed in transformers "
            f"{transformers.__version__} (tested with {TESTED_TRANSFORMERS[0]} to {TESTED_TRANSFORMERS[1]}): "
            + "; ".join(problems)
            + f". Install a tested version: pip install 'transformers>={TESTED_TRANSFORMERS[0]},<="
            f"{TESTED_TRANSFORMERS[1]}.99'."
        )
