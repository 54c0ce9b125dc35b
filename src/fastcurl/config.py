"""The curriculum schedule as plain data.

A FastCuRL run is a list of stages. Each stage names its data, its context length and its batch in the paper's
own terms (prompts per rollout step, prompts per optimizer update, rollouts per prompt); TRL's batch fields are
derived from those and the process count, so a recipe reads like the paper's table and stays correct on any
number of GPUs.

Units: a stage's length, ``rollout_steps``, counts *rollout steps* (one round of generation over
``prompts_per_rollout_step`` prompts), which is the unit of the published schedules (160/590/230/580). The
trainer's ``global_step`` counts *optimizer updates*; a rollout step makes
``prompts_per_rollout_step / prompts_per_update`` updates (times ``num_iterations``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

from trl import GRPOConfig

from .names import default_stage_name, resolve_stage_names, stage_run_name  # noqa: F401 (re-exported)
from .precision import choose_precision

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


@dataclass
class StageConfig:
    """One stage of a curriculum: its data, its context length and its batch, in FastCuRL's terms."""

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
        metadata={"help": "Stage name used in checkpoints, logs and Hub branches. Default: '<segment>-<length>'."},
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

    @classmethod
    def from_dict(cls, data: dict[str, Any], index: int = 0) -> StageConfig:
        """Build a stage from a YAML mapping; GRPOConfig field names at the top level become overrides."""
        if not isinstance(data, dict):
            raise ValueError(f"stages[{index}] must be a mapping of stage fields, got {type(data).__name__}: {data!r}")
        own = {f.name for f in dataclasses.fields(cls)}
        grpo = {f.name for f in dataclasses.fields(GRPOConfig)}
        kwargs: dict[str, Any] = {}
        overrides = dict(data.get("overrides") or {})
        for key, value in data.items():
            if key == "overrides":
                continue
            if key in own:
                kwargs[key] = value
            elif key in grpo:
                overrides[key] = value
            else:
                raise ValueError(
                    f"stages[{index}]: unknown field '{key}'. Stage fields are: {', '.join(sorted(own))}; "
                    f"GRPOConfig fields allowed per stage are: {', '.join(STAGE_OVERRIDABLE_FIELDS)}."
                )
        return cls(**kwargs, overrides=overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class StageBatch:
    """TRL's batch fields for one stage on a given number of processes."""

    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    steps_per_generation: int
    generation_batch_size: int
    updates_per_rollout_step: int
    optimizer_updates: int


def derive_stage_batch(
    stage: StageConfig, per_device_train_batch_size: int, num_processes: int, num_iterations: int = 1
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
    name = stage.name
    if per_update % per_pass:
        raise ValueError(
            f"Stage '{name}': {prompts_per_update} prompts x {stage.num_generations} rollouts = {per_update} "
            f"completions per update do not split evenly into {num_processes} process(es) x {micro} per device. "
            f"Choose per_device_train_batch_size so that {num_processes} x per_device_train_batch_size divides "
            f"{per_update}, or change prompts_per_update."
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

    from .data import load_math_dataset, make_synthetic_math

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
    where = f"Stage {index + 1} ('{stage.name}')"
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
    if stage.segment is not None and stage.segment not in SEGMENTS:
        raise ValueError(f"{where}: segment must be one of {', '.join(SEGMENTS)} or empty, got {stage.segment!r}.")
    _check_dataset_kwargs(stage, where)
    for key in stage.overrides:
        if key in STAGE_FIXED_FIELDS:
            raise ValueError(f"{where}: '{key}' cannot change between stages: {STAGE_FIXED_FIELDS[key]}.")
        if key not in STAGE_OVERRIDABLE_FIELDS:
            raise ValueError(
                f"{where}: '{key}' cannot change between stages. Fields a stage may override: "
                f"{', '.join(STAGE_OVERRIDABLE_FIELDS)}."
            )


@dataclass
class FastCuRLConfig(GRPOConfig):
    """GRPOConfig plus a curriculum: a list of stages applied in order inside one ``.train()``.

    With no stages this is exactly a GRPOConfig. With stages, the top-level ``max_completion_length``,
    ``num_generations`` and batch fields are taken from the first stage, and each later stage sets them anew.
    """

    bf16: bool | None = field(
        default=None,
        metadata={
            "help": "bfloat16 mixed precision. Unset: chosen by the hardware: on GPUs yes (TRL's default); on a CPU "
            "only where bfloat16 is native (AVX512-BF16, AMX), measured by a short matmul probe, else float32. "
            "An explicit true/false always wins (true on a CPU that emulates bfloat16 warns with the slowdown)."
        },
    )
    stages: list[StageConfig] | None = field(
        default=None,
        metadata={"help": "The curriculum: a list of stages (see StageConfig), run in order in one .train() call."},
    )
    max_prompt_length: int | None = field(
        default=1024,
        metadata={
            "help": "Prompts longer than this many tokens (after the chat template) are dropped from each stage's "
            "data, with a logged count. None keeps every prompt."
        },
    )

    save_stage_checkpoints: bool = field(
        default=True,
        metadata={"help": "Save the policy at every stage end to <output_dir>/stage-<N>-<name>/."},
    )
    vllm_weight_sync: str = field(
        default="nccl",
        metadata={
            "help": "How server mode sends new weights to the vLLM server: 'nccl' (TRL's own path, GPUs on both "
            "sides) or 'disk' (a safetensors file the server reloads; works with CPU servers, slower)."
        },
    )
    vllm_preflight_timeout: float = field(
        default=30.0,
        metadata={
            "help": "Seconds to wait for the vLLM server before training starts; the preflight also checks the "
            "served model and that max_model_len covers the longest stage."
        },
    )
    hub_overwrite_branches: bool = field(
        default=False,
        metadata={
            "help": "With push_to_hub, overwrite a stage branch that already exists in hub_model_id and was not "
            "pushed by this run (by default such a push is refused and reported)."
        },
    )
    think_policy: str = field(
        default="template",
        metadata={
            "help": "Where the accuracy reward looks for the answer. 'template': decided once from the chat "
            "template: when its generation prompt opens <think> (R1-distill, Qwen3 thinking), only text after "
            "</think> is graded and a completion without </think> scores 0 ('required'), else 'auto' (after "
            "</think> when present, the whole text when the model writes no tags). Or set 'required', 'auto', 'none'."
        },
    )
    reward_error_limit: int | None = field(
        default=100,
        metadata={
            "help": "A reward function that raises scores that sample 0 and the run goes on (counted as "
            "rewards/<name>/errors), up to this many errors; then the run stops with the traceback. None: any "
            "error stops the run at once, as in TRL."
        },
    )
    noop_guard_threshold: float | None = field(
        default=0.9,
        metadata={
            "help": "Warn when both the clipped-completion ratio and the share of zero-variance reward groups stay "
            "at or above this for noop_guard_patience logged steps (the run is learning nothing). None: off."
        },
    )
    noop_guard_patience: int = field(default=5, metadata={"help": "Logged steps in a row before the guard warns."})
    noop_guard_stop: bool = field(default=False, metadata={"help": "Stop training when the guard fires."})
    eval_benchmarks: list[str] | None = field(
        default=None,
        metadata={
            "help": "Validation sets (names such as aime2024 resolved in eval_data_dir, files, or Hub ids), "
            "evaluated every eval_steps and at each stage end with the current policy; logged as "
            "eval/<name>/pass@1 and eval/<name>/mean_length. Used when no eval_dataset is passed."
        },
    )
    eval_data_dir: str | None = field(
        default=None, metadata={"help": "Directory holding the eval_benchmarks files (verl parquet)."}
    )
    eval_limit: int | None = field(
        default=None, metadata={"help": "Validate on only the first N problems of each eval benchmark."}
    )
    eval_on_stage_end: bool = field(
        default=True, metadata={"help": "Evaluate at every stage end when validation sets are configured."}
    )

    def __post_init__(self):
        # bf16 unset means "choose for this machine": on a CPU, bfloat16 only where it is native (fastcurl.precision).
        self.precision = choose_precision(self.bf16, bool(self.fp16), bool(self.use_cpu))
        if self.precision.bf16 is not None:
            self.bf16 = self.precision.bf16
        # TRL defaults gradient_checkpointing to True, and transformers warns about that deprecated alias whenever
        # activation_checkpointing is unset; resolve the alias here, silently, to the same value.
        if getattr(self, "activation_checkpointing", False) is None and self.gradient_checkpointing is not None:
            self.activation_checkpointing = self.gradient_checkpointing
        if self.stages:
            self.stages = [
                s if isinstance(s, StageConfig) else StageConfig.from_dict(s, i) for i, s in enumerate(self.stages)
            ]
            for stage, name in zip(self.stages, resolve_stage_names(self.stages)):
                stage.name = name
            for i, stage in enumerate(self.stages):
                validate_stage(stage, i)
            if self.max_steps > 0:
                raise ValueError(
                    "max_steps is set together with stages. A curriculum's length is the sum of its stages' "
                    "rollout_steps; shorten the stages instead (the CLI's --max_steps_per_stage does that)."
                )
            first = self.stages[0]
            self.num_generations = first.num_generations
            self.max_completion_length = first.max_completion_length
            # GRPOConfig derives steps_per_generation from this; the true per-stage values are set below.
            self.generation_batch_size = first.prompts_per_rollout_step * first.num_generations
            self.steps_per_generation = None
            self.gradient_accumulation_steps = 1
            self.per_device_train_batch_size = first.overrides.get(
                "per_device_train_batch_size", self.per_device_train_batch_size
            )
            # Our batch errors name the stage; check before TRL's generic ones. WORLD_SIZE is what launchers set.
            for stage in self.stages:
                derive_stage_batch(
                    stage, self.per_device_train_batch_size, int(os.environ.get("WORLD_SIZE", "1")), self.num_iterations
                )
        super().__post_init__()
        if self.think_policy not in ("template", "required", "auto", "none"):
            raise ValueError(
                f"think_policy must be 'template', 'required', 'auto' or 'none', got {self.think_policy!r}."
            )
        if self.vllm_weight_sync not in ("nccl", "disk"):
            raise ValueError(f"vllm_weight_sync must be 'nccl' or 'disk', got {self.vllm_weight_sync!r}.")
        if self.max_prompt_length is not None and self.max_prompt_length < 1:
            raise ValueError(f"max_prompt_length must be a positive integer or None, got {self.max_prompt_length}.")
        if self.stages:
            for stage in self.stages:  # fail now, not at the stage boundary, when a batch does not divide
                derive_stage_batch(stage, self.per_device_train_batch_size, self.world_size, self.num_iterations)
            batch = derive_stage_batch(
                self.stages[0], self.per_device_train_batch_size, self.world_size, self.num_iterations
            )
            self.gradient_accumulation_steps = batch.gradient_accumulation_steps
            self.steps_per_generation = batch.steps_per_generation
            self.generation_batch_size = batch.generation_batch_size

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if self.stages:
            d["stages"] = [s.to_dict() for s in self.stages]
        return d
