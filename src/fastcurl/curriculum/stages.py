"""A curriculum's stages as plain data: what each stage is, what TRL fields it resolves to, what it may override.

Light on purpose (no torch, no TRL): ``fastcurl plan`` reads a recipe with it in about a second.

Units: a stage's length, ``rollout_steps``, counts *rollout steps* (one round of generation over
``prompts_per_rollout_step`` prompts), the unit of the published schedules (160/590/230/580). The trainer's
``global_step`` counts *optimizer updates*; a rollout step makes ``prompts_per_rollout_step /
prompts_per_update`` updates (times ``num_iterations``).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SEGMENTS = ("L1", "L2", "L3")

# GRPOConfig fields a stage may override, each with the trainer state it is applied to at a stage boundary. Every
# entry has a test that the new value reaches the place TRL reads it from (tests/test_stage_overrides.py).
STAGE_OVERRIDABLE_FIELDS: dict[str, str] = {
    "beta": "KL coefficient; a reference model is built when any stage uses beta > 0",
    "entropy_coef": "entropy bonus; switched on for the whole run when any stage uses a non-zero coefficient",
    "learning_rate": "optimizer learning rate (the stage's scheduler is rebuilt from it)",
    "epsilon": "lower clip range",
    "epsilon_high": "upper clip range",
    "top_p": "sampling top-p",
    "top_k": "sampling top-k",
    "min_p": "sampling min-p",
    "repetition_penalty": "sampling repetition penalty",
    "scale_rewards": "advantage scaling",
    "mask_truncated_completions": "exclude truncated completions from the loss",
    "per_device_train_batch_size": "micro-batch size (completions per device per forward/backward)",
}

def _set(*attributes: str) -> Callable[[Any, Any], None]:
    def apply(trainer: Any, value: Any) -> None:
        for attribute in attributes:
            setattr(trainer, attribute, value)
    return apply


def _epsilon(trainer: Any, value: Any) -> None:
    trainer.epsilon_low = value
    if trainer.args.epsilon_high is None:
        trainer.epsilon_high = value


def _epsilon_high(trainer: Any, value: Any) -> None:
    trainer.epsilon_high = value if value is not None else trainer.epsilon_low


def _scale_rewards(trainer: Any, value: Any) -> None:
    trainer.scale_rewards = {True: "group", False: "none"}.get(value, value)


def _sampling(name: str) -> Callable[[Any, Any], None]:
    def apply(trainer: Any, value: Any) -> None:
        setattr(trainer, name, value)
        if trainer.use_vllm:
            setattr(trainer.vllm_generation, name, value)
        else:
            setattr(trainer.generation_config, name, value)
            trainer.generation_kwargs[name] = value
    return apply


def _learning_rate(trainer: Any, value: Any) -> None:
    if trainer.optimizer is not None:
        for group in trainer.optimizer.param_groups:
            group["lr"] = group["initial_lr"] = value
        if trainer.lr_scheduler is not None and hasattr(trainer.lr_scheduler, "base_lrs"):
            trainer.lr_scheduler.base_lrs = [value] * len(trainer.lr_scheduler.base_lrs)


def _micro_batch(trainer: Any, value: Any) -> None:
    from .transformers_hooks import set_micro_batch

    set_micro_batch(trainer, value)


# Where each overridable field reaches TRL after construction: ``apply(trainer, value)``, run at every stage start
# after ``trainer.args.<field>`` is set. One entry per field above (checked below and by tests/test_stage_overrides).
STAGE_FIELD_TARGETS: dict[str, Callable[[Any, Any], None]] = {
    "beta": _set("beta"),
    "entropy_coef": _set("entropy_coef"),
    "learning_rate": _learning_rate,
    "epsilon": _epsilon,
    "epsilon_high": _epsilon_high,
    "top_p": _sampling("top_p"),
    "top_k": _sampling("top_k"),
    "min_p": _sampling("min_p"),
    "repetition_penalty": _sampling("repetition_penalty"),
    "scale_rewards": _scale_rewards,
    "mask_truncated_completions": _set("mask_truncated_completions"),
    "per_device_train_batch_size": _micro_batch,
}
assert STAGE_FIELD_TARGETS.keys() == STAGE_OVERRIDABLE_FIELDS.keys(), "every overridable field needs its target"


def set_max_completion_length(trainer: Any, length: int) -> None:
    """The stage's completion cap, in every copy TRL 1.16 keeps of it, and in the reward functions that take it
    (``set_max_completion_length``, as ``rewards.StageOverlongPenalty``)."""
    trainer.args.max_completion_length = trainer.max_completion_length = length
    if trainer.use_vllm:
        trainer.vllm_generation.max_completion_length = length
    else:
        trainer.generation_config.max_new_tokens = trainer.generation_kwargs["max_new_tokens"] = length
    bind_length_rewards(trainer.reward_funcs, length)


def bind_length_rewards(reward_funcs: list[Any], length: int) -> None:
    import inspect

    for func in reward_funcs:
        bind = getattr(inspect.unwrap(func), "set_max_completion_length", None)
        if callable(bind):
            bind(length)

# Fields TRL bakes in at construction, with the reason a stage cannot change them mid-run.
STAGE_FIXED_FIELDS: dict[str, str] = {
    "temperature": "TRL folds the temperature into the fused LM head when the trainer is built",
    "loss_type": "the loss normaliser and its metrics are chosen when the trainer is built",
    "use_vllm": "the generation backend is created when the trainer is built",
    "num_iterations": "set it once for the run; the sampler repeats and buffering depend on it",
    "gradient_accumulation_steps": "derived from the stage's prompts_per_update; set that instead",
    "steps_per_generation": "derived from the stage's prompts_per_rollout_step; set that instead",
    "generation_batch_size": "derived from the stage's prompts_per_rollout_step; set that instead",
    "max_steps": "use the stage's rollout_steps",
}


class FrozenDict(dict):
    """A ``dict`` that refuses changes: the mappings inside a frozen ``StageConfig`` are part of its value."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("A StageConfig is frozen, its mappings too: make a changed copy with "
                        "dataclasses.replace(stage, overrides={**stage.overrides, 'beta': 0.0}).")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple:
        return (FrozenDict, (dict(self),))


class FrozenList(list):
    """A ``list`` that refuses changes (the conditions of a frozen stage's ``advance_when``)."""

    _refuse = FrozenDict._refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = append = extend = insert = remove = pop = clear = _refuse
    sort = reverse = _refuse

    def __reduce__(self) -> tuple:
        return (FrozenList, (list(self),))


def frozen(value: Any) -> Any:
    """``value`` with every dict and list in it made immutable (still a dict or list for readers and JSON)."""
    if isinstance(value, dict):
        return FrozenDict({key: frozen(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return FrozenList(frozen(item) for item in value)
    return value


def thawed(value: Any) -> Any:
    """A plain, mutable copy of ``value`` (``frozen``'s inverse)."""
    if isinstance(value, dict):
        return {key: thawed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [thawed(item) for item in value]
    return value


@dataclass(frozen=True)
class StageConfig:
    """One stage of a curriculum: its data, its context length and its batch, in FastCuRL's terms.

    Frozen all the way down: its ``overrides``, ``dataset_kwargs`` and ``advance_when`` refuse changes too, so a
    plan built from it cannot drift from the recipe (``dataclasses.replace`` makes a changed stage).
    """

    rollout_steps: int = field(
        default=0,
        metadata={"help": "Length of the stage in rollout steps (generation rounds), the unit of FastCuRL's tables."},
    )
    max_completion_length: int = field(
        default=256, metadata={"help": "Maximum number of generated tokens per completion in this stage."}
    )
    num_generations: int = field(default=8, metadata={"help": "Rollouts (completions) per prompt in this stage."})
    prompts_per_rollout_step: int = field(
        default=8, metadata={"help": "Distinct prompts generated for in one rollout step, over all processes."}
    )
    prompts_per_update: int | None = field(
        default=None,
        metadata={
            "help": "Prompts whose completions make one optimizer update, over all processes. Must divide "
            "prompts_per_rollout_step. Defaults to prompts_per_rollout_step (one update per rollout step)."
        },
    )
    name: str | None = field(
        default=None,
        metadata={"help": "Stage name used in checkpoints, logs and Hub branches: letters, digits, '.', '_' and "
                          "'-'. Default: '<segment>-<length>'."},
    )
    dataset: str | None = field(
        default=None,
        metadata={
            "help": "Where the stage's problems come from: a file (.parquet, .jsonl, .json, .csv), a directory of "
            "them, a Hub dataset id, or 'synthetic' for the built-in offline problems. Empty: the trainer's "
            "train_dataset (or its entry for this stage's name when train_dataset is a dict)."
        },
    )
    dataset_split: str = field(default="train", metadata={"help": "Split to read from a Hub dataset."})
    dataset_kwargs: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Extra loader options (column names, instruction, synthetic size and seed)."},
    )
    segment: str | None = field(
        default=None,
        metadata={
            "help": "Length segment of the source: 'L1' (raw prompt length at or below the mean), 'L3' (above the "
            "mean) or 'L2' (all). Computed once per source and cached."
        },
    )
    reset_reference: bool = field(
        default=True,
        metadata={"help": "Make the policy at the start of this stage the new KL reference (FastCuRL does)."},
    )
    reset_optimizer: bool = field(
        default=True,
        metadata={"help": "Start this stage with a fresh optimizer state and learning-rate schedule."},
    )
    overrides: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "Per-stage values of GRPOConfig fields, allowed for: " + ", ".join(STAGE_OVERRIDABLE_FIELDS)
        },
    )
    advance_when: Any = field(
        default=None,
        metadata={
            "help": "End the stage before its rollout_steps maximum when logged metrics say so, e.g. {any: [{metric: "
            "completions/clipped_ratio, above: 0.3, window: 10}, {metric: reward, plateau: 0.01, window: 20}]} "
            "(fastcurl.curriculum.advance). Empty: the stage runs all its rollout_steps."
        },
    )
    min_rollout_steps: int = field(
        default=0, metadata={"help": "With advance_when: the stage runs at least this many rollout steps."}
    )
    drop_solved: bool = field(
        default=False,
        metadata={"help": "Leave out of this stage's data the prompts that every rollout answered right in the "
                          "earlier stages (by the first reward function; Skywork-OR1's filtering)."},
    )
    dynamic_sampling: bool = field(
        default=False,
        metadata={"help": "Train only on groups whose rewards differ (DAPO's dynamic sampling): flat groups are "
                          "dropped and more prompts generated for, up to max_generation_rounds rounds per rollout "
                          "step (fastcurl.curriculum.dynamic_sampling)."},
    )
    max_generation_rounds: int = field(
        default=3,
        metadata={"help": "With dynamic_sampling: generation rounds per rollout step at most, the first included. "
                          "A rollout step still short of groups with a spread after them is filled with flat ones."},
    )

    def __post_init__(self) -> None:
        for name in ("overrides", "dataset_kwargs", "advance_when"):
            object.__setattr__(self, name, frozen(getattr(self, name)))

    @classmethod
    def from_dict(cls, data: dict[str, Any], index: int = 0) -> StageConfig:
        """Build a stage from a YAML mapping; GRPOConfig field names at the top level become overrides."""
        if not isinstance(data, dict):
            raise ValueError(f"stages[{index}] must be a mapping of stage fields, got {type(data).__name__}: {data!r}")
        own = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        overrides = data.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise ValueError(f"stages[{index}]: overrides must be a mapping of GRPOConfig fields to values "
                             f"(overrides: {{beta: 0.001}}), got {overrides!r}.")
        overrides = dict(overrides)
        for key, value in data.items():
            if key == "overrides":
                continue
            if key in own:
                kwargs[key] = _as_bool(value) if key in STAGE_BOOL_FIELDS else value
            elif key in STAGE_OVERRIDABLE_FIELDS or key in STAGE_FIXED_FIELDS or key in _grpo_fields():
                if key in overrides and overrides[key] != value:
                    raise ValueError(f"stages[{index}]: '{key}' is set twice, {value!r} and overrides.{key}: "
                                     f"{overrides[key]!r}. Keep one.")
                overrides[key] = value  # validate_stage says whether this one may change per stage
            else:
                close = difflib.get_close_matches(str(key), [*own, *STAGE_OVERRIDABLE_FIELDS], n=1)
                raise ValueError(
                    f"stages[{index}]: unknown field '{key}'" + (f" (did you mean '{close[0]}'?)" if close else "")
                    + f". Stage fields are: {', '.join(sorted(own))}; "
                    f"GRPOConfig fields allowed per stage are: {', '.join(STAGE_OVERRIDABLE_FIELDS)}."
                )
        overrides = {key: _parsed(key, value, index) for key, value in overrides.items()}
        return cls(**kwargs, overrides=overrides)

    def to_dict(self) -> dict[str, Any]:
        """The stage's fields as plain, mutable Python values (YAML and JSON ready)."""
        return {f.name: thawed(getattr(self, f.name)) for f in dataclasses.fields(self)}


def stages_from_recipe(value: Any) -> list[StageConfig]:
    """A recipe's ``stages:`` as StageConfigs, each mapping checked as it is read (StageConfigs are kept)."""
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"stages must be a list with one mapping per stage (`- {{rollout_steps: 160, ...}}`), "
                         f"got {type(value).__name__}: {value!r}.")
    return [s if isinstance(s, StageConfig) else StageConfig.from_dict(s, i) for i, s in enumerate(value)]


STAGE_BOOL_FIELDS = tuple(f.name for f in dataclasses.fields(StageConfig) if f.type == "bool")
# A branch- and directory-safe name: it becomes ``stage-N-<name>`` on disk and on the Hub.
_STAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def _as_bool(value: Any) -> Any:
    """YAML's quoted ``"false"`` as a boolean (a stage's own flags and its overrides alike); anything else is
    returned as given, for the caller to name."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


# The type of each overridable field (YAML reads ``5e-4`` as a string: it is parsed here, as TRL's parser does).
STAGE_FIELD_TYPES: dict[str, type] = {
    "beta": float, "entropy_coef": float, "learning_rate": float, "epsilon": float, "epsilon_high": float,
    "top_p": float, "top_k": int, "min_p": float, "repetition_penalty": float, "scale_rewards": str,
    "mask_truncated_completions": bool, "per_device_train_batch_size": int,
}
_NULLABLE = {"epsilon_high", "min_p", "top_k"}
assert STAGE_FIELD_TYPES.keys() == STAGE_OVERRIDABLE_FIELDS.keys(), "every overridable field needs its type"


def _parsed(key: str, value: Any, index: int) -> Any:
    """``value`` of override ``key`` as its field's type; a value that is not one fails naming the field."""
    kind = STAGE_FIELD_TYPES.get(key)
    if kind is None or (value is None and key in _NULLABLE):
        return value
    if kind is str:  # scale_rewards: "group", "batch", "none" or a boolean
        return value
    if kind is bool:
        if isinstance(_as_bool(value), bool):
            return _as_bool(value)
    elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            number = float(value)
            if kind is int:
                if number != int(number):
                    raise ValueError
                return int(number)
            return number
        except ValueError:
            pass
    raise ValueError(f"stages[{index}]: {key} must be {'a boolean' if kind is bool else 'a number'}"
                     f"{' (an integer)' if kind is int else ''}, got {value!r}.")


def _grpo_fields() -> frozenset[str]:
    """The config's field names (GRPOConfig's and the run's), read from source without importing TRL; asked only
    for a key that is no stage field, which validate_stage then names as one that cannot change per stage."""
    from .recipe_keys import recipe_field_names

    names = recipe_field_names()
    if names is None:
        from trl import GRPOConfig

        names = frozenset(f.name for f in dataclasses.fields(GRPOConfig))
    return names


@dataclass(frozen=True)
class StageBatch:
    """TRL's batch fields for one stage on a given number of processes."""

    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    steps_per_generation: int
    generation_batch_size: int
    updates_per_rollout_step: int
    optimizer_updates: int


def stage_label(stage: StageConfig, index: int | None = None) -> str:
    """How messages name a stage: ``Stage 2 ('L2-16k')``; the number or the name alone where only one is known."""
    number = f"Stage {index + 1}" if index is not None else "Stage"
    return f"{number} ('{stage.name}')" if stage.name is not None else number


def derive_stage_batch(
    stage: StageConfig, per_device_train_batch_size: int, num_processes: int, num_iterations: int = 1,
    index: int | None = None,
) -> StageBatch:
    """Translate a stage's prompts-per-step terms into TRL's per-device batch fields.

    Completions per update = prompts_per_update x num_generations = per_device x processes x grad_accum;
    completions per rollout step = prompts_per_rollout_step x num_generations = per_device x processes x
    steps_per_generation.
    """
    micro = stage.overrides.get("per_device_train_batch_size", per_device_train_batch_size)
    prompts_per_update = stage.prompts_per_update or stage.prompts_per_rollout_step
    per_pass = micro * num_processes
    per_update = prompts_per_update * stage.num_generations
    per_rollout = stage.prompts_per_rollout_step * stage.num_generations
    where = stage_label(stage, index)
    if per_update % per_pass:
        raise ValueError(
            f"{where}: {prompts_per_update} prompts x {stage.num_generations} rollouts = {per_update} "
            f"completions per update do not split evenly into {num_processes} process(es) x {micro} per device. "
            f"Choose per_device_train_batch_size so that {num_processes} x per_device_train_batch_size divides "
            f"{per_update}, or change prompts_per_update."
        )
    if stage.dynamic_sampling and stage.prompts_per_rollout_step % num_processes:
        raise ValueError(
            f"{where}: dynamic_sampling keeps each prompt's rollouts together on one process, so "
            f"prompts_per_rollout_step ({stage.prompts_per_rollout_step}) must be a multiple of the process count "
            f"({num_processes}). Change prompts_per_rollout_step or the process count."
        )
    grad_accum = per_update // per_pass
    steps_per_generation = per_rollout // per_pass
    updates_per_rollout = steps_per_generation // grad_accum
    return StageBatch(
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=grad_accum,
        steps_per_generation=steps_per_generation,
        generation_batch_size=per_rollout,
        updates_per_rollout_step=updates_per_rollout,
        optimizer_updates=stage.rollout_steps * updates_per_rollout * num_iterations,
    )


def _check_dataset_kwargs(stage: StageConfig, where: str) -> None:
    """``dataset_kwargs`` must be options of the loader the stage's ``dataset`` goes to (the generator or files)."""
    import inspect

    from ..data import load_math_dataset, make_synthetic_math

    if not isinstance(stage.dataset_kwargs, dict):
        raise ValueError(f"{where}: dataset_kwargs must be a mapping, got {stage.dataset_kwargs!r}.")
    synthetic = stage.dataset == "synthetic"
    loader = make_synthetic_math if synthetic else load_math_dataset
    options = [n for n in inspect.signature(loader).parameters if n not in ("source", "split")]
    other = load_math_dataset if synthetic else make_synthetic_math
    for key in stage.dataset_kwargs:
        if key not in options:
            hint = ""
            if key in inspect.signature(other).parameters:
                hint = (f" '{key}' is an option of {'data files' if synthetic else 'the synthetic generator'}; "
                        f"{'set dataset to a file' if synthetic else 'use dataset: synthetic'} or drop it.")
            source = "the synthetic generator" if synthetic else f"loading {stage.dataset or 'train_dataset'}"
            raise ValueError(
                f"{where}: dataset_kwargs has '{key}', which is not an option of {source}. Options: "
                f"{', '.join(options)}.{hint}"
            )


def validate_stage(stage: StageConfig, index: int) -> None:
    """Reject a stage that cannot run, naming the stage and the field, before any model or data loads."""
    where = stage_label(stage, index)
    if stage.name is not None and (not isinstance(stage.name, str) or not _STAGE_NAME.fullmatch(stage.name)
                                   or ".." in stage.name or stage.name.endswith((".", ".lock"))):
        raise ValueError(f"{where}: name must be 1 to 96 letters, digits, '.', '_' or '-', starting with a letter "
                         f"or digit (it names a checkpoint directory and a Hub branch), got {stage.name!r}.")
    for name in STAGE_BOOL_FIELDS:
        if not isinstance(getattr(stage, name), bool):
            raise ValueError(f"{where}: {name} must be true or false, got {getattr(stage, name)!r}.")
    for name in ("rollout_steps", "max_completion_length", "num_generations", "prompts_per_rollout_step"):
        value = getattr(stage, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{where}: {name} must be a positive integer, got {value!r}.")
    if stage.num_generations < 2:
        raise ValueError(
            f"{where}: num_generations must be at least 2 (GRPO normalises rewards within each prompt's group), "
            f"got {stage.num_generations}."
        )
    per_update = stage.prompts_per_update or stage.prompts_per_rollout_step
    if not isinstance(per_update, int) or per_update < 1:
        raise ValueError(f"{where}: prompts_per_update must be a positive integer, got {stage.prompts_per_update!r}.")
    if stage.prompts_per_rollout_step % per_update:
        raise ValueError(
            f"{where}: prompts_per_update ({per_update}) must divide prompts_per_rollout_step "
            f"({stage.prompts_per_rollout_step}): each rollout step makes a whole number of updates."
        )
    if stage.dataset is not None and not isinstance(stage.dataset, str):
        raise ValueError(f"{where}: dataset must be a file path, a Hub dataset name or 'synthetic', got "
                         f"{stage.dataset!r}; the loader's arguments go in dataset_kwargs.")
    if stage.segment is not None and stage.segment not in SEGMENTS:
        raise ValueError(f"{where}: segment must be one of {', '.join(SEGMENTS)} or empty, got {stage.segment!r}.")
    _check_dataset_kwargs(stage, where)
    if stage.advance_when is not None:
        from .advance import check_logged, validate_rule

        validate_rule(stage.advance_when, where)
        check_logged(stage.advance_when, where, dynamic_sampling=stage.dynamic_sampling)
    if stage.drop_solved and index == 0:
        raise ValueError(f"{where}: drop_solved leaves out what earlier stages solved, and the first stage has none. "
                         "Set it on a later stage.")
    if not isinstance(stage.min_rollout_steps, int) or not 0 <= stage.min_rollout_steps <= stage.rollout_steps:
        raise ValueError(f"{where}: min_rollout_steps must be an integer from 0 to rollout_steps "
                         f"({stage.rollout_steps}), got {stage.min_rollout_steps!r}.")
    rounds = stage.max_generation_rounds
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        raise ValueError(f"{where}: max_generation_rounds must be a positive integer, got {rounds!r}.")
    for key, value in stage.overrides.items():
        if key in STAGE_FIELD_TYPES:
            _parsed(key, value, index)  # a StageConfig built in Python gets the same check
        if key in STAGE_FIXED_FIELDS:
            raise ValueError(f"{where}: '{key}' cannot change between stages: {STAGE_FIXED_FIELDS[key]}.")
        if key not in STAGE_OVERRIDABLE_FIELDS:
            raise ValueError(
                f"{where}: '{key}' cannot change between stages. Fields a stage may override: "
                f"{', '.join(STAGE_OVERRIDABLE_FIELDS)}."
            )



def check_peft_reference(stages: list[StageConfig], beta: float) -> None:
    """Under PEFT the KL reference is the adapter-free base model: a later stage cannot make the policy its reference."""
    for index, stage in enumerate(stages[1:], start=1):
        if stage.reset_reference and stage.overrides.get("beta", beta) != 0:
            raise ValueError(
                f"Stage {index + 1} ('{stage.name}') asks for reset_reference with a PEFT adapter, but under "
                "PEFT the KL reference is the adapter-free base model and cannot become the current policy. "
                "Set reset_reference: false for the stages after the first, set beta: 0, or train without PEFT."
            )
