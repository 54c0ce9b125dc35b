"""Every private part of transformers' ``Trainer`` (and TRL's GRPOTrainer) the curriculum touches, in one place.

A curriculum runs each stage as one pass of transformers' epoch loop, so :class:`TransformersLoopHooks` (a base
of ``CurriculumGRPOTrainer``) overrides a few private methods and hands each to the trainer's public mechanism
(``loop_values``, ``resume_position``, ``run_stage``, ``stage_sampler``, ``save_checkpoint_safely``); the few
private attributes a stage boundary resets are written by the functions at the end of this module only.
transformers may rename their parameters or reorder the tuple one of them returns in any release; silently, that
would make a resume look like a fresh stage (reference and optimizer reset). So the signatures relied on are
listed here and checked when ``fastcurl.curriculum.trainer`` is imported: a mismatch fails at once with the hook's
name, what was expected and what is installed, instead of misbehaving hours into a run.

Relied on (transformers 5.17 to 5.24):
- ``_run_epoch(model, epoch, train_dataloader, steps_in_epoch, num_update_steps_per_epoch, trial,
  ignore_keys_for_eval, start_time, resume_from_checkpoint, epochs_trained, steps_trained_in_current_epoch)``:
  called once per epoch, and a curriculum stage is an epoch.
- ``_init_training_state(max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint, trial)``
  returning ``(epochs_trained, steps_trained_in_current_epoch)``: where a resume starts.
- ``set_initial_training_values(args, dataloader)`` returning the seven values of :class:`TrainingValues`, in
  that order: the loop's length.
- ``_load_callback_state()``: with ``restore_callback_states_from_checkpoint`` it rebuilds saved callbacks from
  constructor arguments; the curriculum's callbacks restore themselves (``resume_position``), so it skips them.
- ``_get_output_dir(trial)`` and ``_save_checkpoint(model, trial)``: where checkpoints are written.
- ``_get_train_sampler(dataset)`` (TRL's RepeatSampler): wrapped per stage.
- ``_generate_and_score_completions(inputs)`` (TRL): wrapped for dynamic sampling (``curriculum.dynamic_sampling``).
- The attributes ``_buffered_inputs``, ``_step`` (TRL's generation buffer and micro-step counter),
  ``_train_batch_size`` (the dataloader's batch) and ``callback_handler.lr_scheduler``, reset at a stage boundary,
  and the public ones a stage's length and overrides are written to (``RELIED_ON_ATTRIBUTES``).
- ``args.hf_deepspeed_config`` and ``args.deepspeed_plugin``: DeepSpeed's batch fields, refilled for the first stage;
  the plugin's ``deepspeed_config`` and the engine's ``set_train_micro_batch_size`` and
  ``set_train_batch_size``: each later stage's micro-batch and accumulation.
"""

from __future__ import annotations

import inspect
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
    "_load_callback_state": (),
}

# What two of them return, by the names in their source's last return statement (a reorder or a new value fails).
RELIED_ON_RETURNS: dict[str, tuple[str, ...]] = {
    "set_initial_training_values": ("num_train_epochs", "num_update_steps_per_epoch", "num_examples",
                                    "num_train_samples", "total_train_batch_size", "steps_in_epoch", "max_steps"),
    "_init_training_state": ("epochs_trained", "steps_trained_in_current_epoch"),
}

# On TRL's GRPOTrainer, which defines the sampler the curriculum wraps.
# ``_generate_and_score_completions(inputs)``: wrapped for dynamic sampling, which reads its output fields
# (``advantages`` per completion, padded prompt and completion tensors, ``num_items_in_batch``).
RELIED_ON_TRL_PARAMETERS: dict[str, tuple[str, ...]] = {"_get_train_sampler": ("dataset",),
                                                        "_generate_and_score_completions": ("inputs",)}


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


def _returned_names(function: Any) -> list[tuple[str, ...]] | None:
    """The names in each of a function's ``return a, b, ...`` statements, or None when its source is unavailable."""
    import ast
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return None
    returned = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Return) and node.value is not None:
            items = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            returned.append(tuple(item.id if isinstance(item, ast.Name) else ast.unparse(item) for item in items))
    return returned


def _tested(version: str) -> bool:
    """Whether ``version`` of transformers lies in the range this module was checked against."""
    from packaging.version import Version

    release = Version(version).release[:2]
    return Version(TESTED_TRANSFORMERS[0]).release[:2] <= release <= Version(TESTED_TRANSFORMERS[1]).release[:2]


def drift(trainer_class: type, grpo_class: type | None = None, version: str | None = None) -> list[str]:
    """What differs between ``trainer_class`` (transformers' Trainer) and what this module relies on, each problem
    prefixed with its owner (``Trainer.`` or ``GRPOTrainer.``).

    With ``grpo_class`` (TRL's GRPOTrainer) its relied-on hooks are checked too. Where a method's source cannot
    be read, its return order is unverifiable: accepted for a ``version`` of transformers in the tested range,
    a problem outside it.
    """
    problems = []
    relied_on = [(trainer_class, name, expected) for name, expected in RELIED_ON_PARAMETERS.items()]
    if grpo_class is not None:
        relied_on += [(grpo_class, name, expected) for name, expected in RELIED_ON_TRL_PARAMETERS.items()]
    for owner, name, expected in relied_on:
        where = f"{'GRPOTrainer' if owner is grpo_class else 'Trainer'}.{name}"
        method = getattr(owner, name, None)
        if method is None:
            problems.append(f"{where}: no longer exists")
            continue
        found = tuple(p for p in inspect.signature(method).parameters if p != "self")
        if found != expected:
            problems.append(f"{where}: expected parameters {expected}, found {found}")
    for name, fields in RELIED_ON_RETURNS.items():
        method = getattr(trainer_class, name, None)
        if method is None:
            continue  # named above
        returned = _returned_names(method)
        if returned is None:
            if version is not None and not _tested(version):
                problems.append(f"Trainer.{name}: its source cannot be read, so the order of its returned values "
                                "cannot be checked on an untested transformers")
            continue
        for names in returned:
            if names != fields:
                problems.append(f"Trainer.{name}: expected to return {fields}, returns {names}")
    return problems


def check_transformers(trainer_class: type | None = None, grpo_class: type | None = None) -> None:
    """Raise :class:`TransformersDriftError` naming every hook that changed, and in which library; called at import
    of the trainer (the classes are the installed ones unless given)."""
    import transformers
    import trl

    problems = drift(trainer_class or transformers.Trainer, grpo_class or trl.GRPOTrainer, transformers.__version__)
    if not problems:
        return
    in_trl = [p for p in problems if p.startswith("GRPOTrainer.")]
    in_transformers = [p for p in problems if p not in in_trl]
    parts = []
    if in_transformers:
        parts.append(
            f"private hooks of transformers' Trainer changed in transformers {transformers.__version__} (tested "
            f"with {TESTED_TRANSFORMERS[0]} to {TESTED_TRANSFORMERS[1]}): " + "; ".join(in_transformers)
            + f". Install a tested version: pip install 'transformers>={TESTED_TRANSFORMERS[0]},<="
            f"{TESTED_TRANSFORMERS[1]}.99'")
    if in_trl:
        parts.append(f"private hooks of TRL's GRPOTrainer changed in trl {trl.__version__}: " + "; ".join(in_trl)
                     + ". Install the trl version pyproject.toml names")
    raise TransformersDriftError("fastcurl's curriculum relies on " + ". It also relies on ".join(parts) + ".")


class TransformersLoopHooks:
    """The overrides of transformers' private loop, each handed to the trainer's mechanism when a curriculum runs.

    Placed before ``GRPOTrainer`` in ``CurriculumGRPOTrainer``'s bases. Without a curriculum (a plain
    ``GRPOConfig``) each calls the original unchanged.
    """

    def set_initial_training_values(self, args, dataloader):
        values = super().set_initial_training_values(args, dataloader)
        return tuple(self.loop_values()) if self.curriculum_active else values

    def _init_training_state(self, max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint,
                             trial):
        position = super()._init_training_state(max_steps, num_update_steps_per_epoch, num_train_epochs,
                                                resume_from_checkpoint, trial)
        if not self.curriculum_active:
            return position
        return self.resume_position(resumed=resume_from_checkpoint is not None)

    def _load_callback_state(self):
        # transformers would rebuild each saved callback as ``type(callback)(**saved["args"])`` and swap it in; the
        # curriculum's callbacks are built from the plan and restore their own saved state in resume_position.
        restore_themselves = {type(c).__name__ for c in self.callback_handler.callbacks
                              if getattr(c, "restores_own_state", False)}
        saved = self.state.stateful_callbacks
        self.state.stateful_callbacks = {k: v for k, v in saved.items() if k not in restore_themselves}
        try:
            super()._load_callback_state()
        finally:
            self.state.stateful_callbacks = saved

    def _run_epoch(self, model, epoch, train_dataloader, steps_in_epoch, num_update_steps_per_epoch, trial,
                   ignore_keys_for_eval, start_time, resume_from_checkpoint, epochs_trained,
                   steps_trained_in_current_epoch):
        # Every parameter by name (checked above): a renamed one fails at import instead of making a resume look
        # like a fresh stage.
        passed = dict(model=model, epoch=epoch, trial=trial, ignore_keys_for_eval=ignore_keys_for_eval,
                      start_time=start_time, resume_from_checkpoint=resume_from_checkpoint,
                      epochs_trained=epochs_trained, steps_trained_in_current_epoch=steps_trained_in_current_epoch)
        if not self.curriculum_active:
            return super()._run_epoch(train_dataloader=train_dataloader, steps_in_epoch=steps_in_epoch,
                                      num_update_steps_per_epoch=num_update_steps_per_epoch, **passed)

        def run_pass(dataloader: Any, micro_steps: int, updates: int) -> None:
            super(TransformersLoopHooks, self)._run_epoch(
                train_dataloader=dataloader, steps_in_epoch=micro_steps, num_update_steps_per_epoch=updates, **passed
            )

        self.run_stage(epoch, resuming=resume_from_checkpoint is not None and epoch == epochs_trained,
                       run_pass=run_pass)

    def _get_train_sampler(self, dataset=None):
        sampler = super()._get_train_sampler(dataset)
        return self.stage_sampler(sampler) if self.curriculum_active else sampler

    def _generate_and_score_completions(self, inputs):
        return self.generate_rollout_step(inputs, super()._generate_and_score_completions)

    def _save_checkpoint(self, model, trial):
        self.save_checkpoint_safely(lambda: super(TransformersLoopHooks, self)._save_checkpoint(model, trial),
                                    run_dir=super()._get_output_dir(trial))

    def save_checkpoint_now(self) -> None:
        """Write ``checkpoint-<global step>`` outside the loop's own save points (a SIGTERM during a reward call);
        through ``_save_checkpoint``, so through ``save_checkpoint_safely`` like every other checkpoint."""
        self._save_checkpoint(self.model, trial=None)


# TRL's GRPOTrainer attributes the curriculum writes at a stage boundary (the loop's state, every copy of the
# completion cap, each per-stage override's target in ``stages.STAGE_FIELD_TARGETS``) or appends metrics to; a
# rename would make these writes create new attributes silently, so their presence is checked when the trainer is
# built. The sampling settings and the cap take effect in the generation copies, which depend on the mode.
RELIED_ON_ATTRIBUTES = ("_buffered_inputs", "_step", "_metrics", "_train_batch_size", "callback_handler.lr_scheduler",
                        "max_completion_length", "beta", "entropy_coef", "epsilon_low", "epsilon_high",
                        "scale_rewards", "mask_truncated_completions", "use_vllm")
_SAMPLING = ("top_p", "top_k", "min_p", "repetition_penalty")
RELIED_ON_GENERATION_ATTRIBUTES = {
    True: tuple(f"vllm_generation.{name}" for name in (*_SAMPLING, "max_completion_length")),
    False: (*(f"generation_config.{name}" for name in (*_SAMPLING, "max_new_tokens")), "generation_kwargs"),
}


def check_trainer_attributes(trainer: Any) -> None:
    """Raise :class:`TransformersDriftError` naming every relied-on attribute a built GRPOTrainer lacks."""
    def has(path: str) -> bool:
        target = trainer
        for name in path.split("."):
            if not hasattr(target, name):
                return False
            target = getattr(target, name)
        return True

    relied_on = RELIED_ON_ATTRIBUTES + RELIED_ON_GENERATION_ATTRIBUTES[bool(getattr(trainer, "use_vllm", False))]
    missing = [name for name in relied_on if not has(name)]
    if missing:
        import transformers
        import trl

        raise TransformersDriftError(
            f"fastcurl's curriculum writes trainer attributes that TRL {trl.__version__} (on transformers "
            f"{transformers.__version__}) no longer has: {', '.join(missing)}. Install the TRL and transformers "
            "versions pyproject.toml names, or report it to fastcurl.")


def refill_deepspeed_config(args: Any, plans: list[Any]) -> None:
    """DeepSpeed's ``"auto"`` batch fields filled again from ``args`` as the first stage sets them.

    A batch field the DeepSpeed config writes out must hold for every stage (DeepSpeed would refuse the first
    stage's at ``train()``, and a later stage's goes unchecked), so a disagreement fails here, before the model
    loads, naming the stage and the fix.

    transformers fills them once, in ``TrainingArguments.__post_init__``, from the config's own batch fields, and
    ``Trainer`` keeps that fill when it finds one; a curriculum trains with the first stage's plan instead. This is
    what ``Trainer`` itself does when a hyperparameter search changes the batch.
    """
    if not getattr(args, "deepspeed", None):
        plugin = getattr(args, "deepspeed_plugin", None)
        if plugin is not None:  # DeepSpeed from accelerate's own config (accelerate launch --use_deepspeed ...)
            check_deepspeed_batch(plugin.deepspeed_config, plans, args.world_size,
                                  fix="Leave it out of the deepspeed_config section of accelerate's config (or "
                                  "its flag --gradient_accumulation_steps)")
        return
    check_deepspeed_batch(args.deepspeed, plans, args.world_size)
    from accelerate.utils import DeepSpeedPlugin
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    args.hf_deepspeed_config = HfTrainerDeepSpeedConfig(args.deepspeed)
    args.hf_deepspeed_config.trainer_config_process(args)
    args.deepspeed_plugin = DeepSpeedPlugin(hf_ds_config=args.hf_deepspeed_config)


def train_metrics(trainer: Any) -> dict[str, list[float]]:
    """TRL's metric lists for the current update (``_metrics['train']``): what is appended is logged with it."""
    return trainer._metrics["train"]


def reset_generation_buffer(trainer: Any, micro_step: int) -> None:
    """TRL's buffered completions (shaped for the previous stage's batch) dropped; its micro-step counter set."""
    trainer._buffered_inputs = None
    trainer._step = micro_step


def set_micro_batch(trainer: Any, size: int) -> None:
    """The dataloader's batch size (transformers reads ``_train_batch_size`` when it builds the dataloader)."""
    trainer._train_batch_size = size


def replace_scheduler(trainer: Any) -> None:
    """A new LR schedule made current, also where the callback handler hands it to callbacks."""
    trainer.lr_scheduler = None
    trainer.create_scheduler(num_training_steps=0, optimizer=trainer.optimizer)
    trainer.callback_handler.lr_scheduler = trainer.lr_scheduler


def eval_metric_buffers(trainer: Any) -> dict[str, list[float]]:
    """TRL's per-mode metric buffers of the evaluation just run (``GRPOTrainer._metrics["eval"]``)."""
    return trainer._metrics["eval"]


def set_deepspeed_batch(trainer: Any, micro_batch: int, steps: int) -> None:
    """A stage's micro-batch and accumulation given to DeepSpeed's engine and the accelerator too, not only to
    ``args``.

    transformers decides each update's boundary from ``args`` and accelerate passes it to the engine, so updates
    were right without this; the engine's and the accelerator's own counts (its batch size, its logs) follow it.
    """
    engine = trainer.model_wrapped
    if not getattr(trainer, "is_deepspeed_enabled", False) or not hasattr(engine, "set_train_batch_size"):
        return
    engine.set_train_micro_batch_size(micro_batch)
    engine.set_train_batch_size(micro_batch * engine.dp_world_size * steps)
    # accelerate copies the plugin's value back into the accelerator whenever a dataloader is prepared, and an
    # engine built later from the plugin's config (TRL's ZeRO-3 reference model) checks the three agree
    config = trainer.accelerator.state.deepspeed_plugin.deepspeed_config
    config.update(gradient_accumulation_steps=steps, train_batch_size=engine.train_batch_size(),
                  train_micro_batch_size_per_gpu=engine.train_micro_batch_size_per_gpu())
    trainer.accelerator.gradient_accumulation_steps = steps


def check_deepspeed_batch(deepspeed: str | dict, plans: list[Any], world_size: int, fix: str | None = None) -> None:
    """Each batch field a DeepSpeed config sets (not ``"auto"``) equals every stage's value on ``world_size``."""
    from .stages import stage_label

    if not isinstance(deepspeed, dict):  # a file, a JSON string or base64, read as accelerate reads it
        from accelerate.utils.deepspeed import HfDeepSpeedConfig

        deepspeed = HfDeepSpeedConfig(deepspeed).config
    for plan in plans:
        batch = plan.batch
        planned = {"gradient_accumulation_steps": batch.gradient_accumulation_steps,
                   "train_micro_batch_size_per_gpu": batch.per_device_train_batch_size,
                   "train_batch_size": batch.per_device_train_batch_size * batch.gradient_accumulation_steps
                   * world_size}
        for key, value in planned.items():
            given = deepspeed.get(key, "auto")
            default_fix = f'Set "{key}": "auto" in the DeepSpeed config'
            if given != "auto" and given != value:
                raise ValueError(
                    f"The DeepSpeed config sets {key}: {given}, but {stage_label(plan.config, plan.index)} trains "
                    f"with {value} on {world_size} process(es) (from its prompts_per_update, num_generations and "
                    f"per_device_train_batch_size). {fix or default_fix}: each stage's value then comes from its "
                    "plan."
                )
