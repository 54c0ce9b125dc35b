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

from dataclasses import dataclass, field
from typing import Any

from trl import GRPOConfig

from .names import default_stage_name, resolve_stage_names, stage_run_name, with_resolved_names  # noqa: F401
from ..generation.precision import choose_precision, runs_on_cpu
from .advance import check_logged
from .plan import StagePlan, resolve_plan
from .stages import (  # noqa: F401 (re-exported: the config's public names)
    SEGMENTS,
    STAGE_FIXED_FIELDS,
    STAGE_OVERRIDABLE_FIELDS,
    StageBatch,
    StageConfig,
    derive_stage_batch,
    stages_from_recipe,
    validate_stage,
)


# The GRPOConfig fields a stage sets (through its plan), which GRPOTrainer reads when it is built.
FIRST_STAGE_FIELDS = ("num_generations", "max_completion_length", "generation_batch_size", "steps_per_generation",
                      "gradient_accumulation_steps", "per_device_train_batch_size")


def first_stage_values(plan: StagePlan) -> dict[str, Any]:
    """The values of :data:`FIRST_STAGE_FIELDS` that GRPOTrainer must be built with for a curriculum's first stage."""
    return {
        "num_generations": plan.config.num_generations,
        "max_completion_length": plan.config.max_completion_length,
        "generation_batch_size": plan.batch.generation_batch_size,
        "steps_per_generation": plan.batch.steps_per_generation,
        "gradient_accumulation_steps": plan.batch.gradient_accumulation_steps,
        "per_device_train_batch_size": plan.batch.per_device_train_batch_size,
    }


def private_copy(args: Any) -> Any:
    """A copy of the caller's config for the trainer to write at each stage boundary (TRL reads batch fields and
    lengths from its args); its dicts and lists copied too, since TRL fills ``model_init_kwargs`` in place."""
    import copy

    args = copy.copy(args)
    for name, value in vars(args).items():
        if isinstance(value, (dict, list)):
            setattr(args, name, copy.deepcopy(value))
    return args


def construction_values(stages: list[StageConfig], args: Any) -> dict[str, Any]:
    """Values GRPOTrainer must see at construction so that later stages can use what TRL sets up only then.

    TRL builds no reference model when ``beta == 0`` and enables the entropy bonus only when ``entropy_coef != 0``;
    both are decided once, in ``__init__``.
    """
    values: dict[str, Any] = {}
    for name in ("beta", "entropy_coef"):
        nonzero = [v for v in (s.overrides.get(name, getattr(args, name)) for s in stages) if v != 0]
        if getattr(args, name) == 0 and nonzero:
            values[name] = nonzero[0]
    return values


def set_first_stage(args: Any, plans: list[StagePlan]) -> tuple[dict[str, Any], list[str]]:
    """Write into the trainer's copy ``args`` what GRPOTrainer is built with for a curriculum: the first stage's
    fields (its buffers, sampler and checks are sized from them; each stage resets them) and the construction
    values. Returns the overridable fields' values as given (each stage's base) and the construction fields, which
    go back to those values once GRPOTrainer is built."""
    base = {name: getattr(args, name) for name in STAGE_OVERRIDABLE_FIELDS}
    construction = construction_values([p.config for p in plans], args)
    for name, value in {**first_stage_values(plans[0]), **construction}.items():
        setattr(args, name, value)
    return base, list(construction)


@dataclass
class FastCuRLConfig(GRPOConfig):
    """GRPOConfig plus a curriculum: a list of stages applied in order inside one ``.train()``.

    With no stages this is exactly a GRPOConfig. With stages, the config keeps the fields as given; each stage's
    ``max_completion_length``, ``num_generations`` and batch fields are resolved in its plan
    (``fastcurl.curriculum.plan``) and applied by the trainer to its own copy of the config.
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
    resume_with_changed_recipe: bool = field(
        default=False,
        metadata={"help": "Resume from a checkpoint whose resolved stages differ from this recipe's (refused by "
                  "default: its stage boundaries and batch fields would not match)."},
    )
    reward_timeout: float | None = field(
        default=600.0,
        metadata={"help": "Seconds one call of a reward function may take before the run stops with an error naming "
                  "it and the stage (a hanging reward would hang the run). None: no limit."},
    )
    eval_on_stage_end: bool = field(
        default=True, metadata={"help": "Evaluate at every stage end when validation sets are configured."}
    )

    def __post_init__(self):
        # bf16 unset means "choose for this machine": on a CPU, bfloat16 only where it is native (fastcurl.generation.precision).
        self.precision = choose_precision(self.bf16, bool(self.fp16), bool(self.use_cpu))
        if self.precision.bf16 is not None:
            self.bf16 = self.precision.bf16
        if self.bf16 and not self.use_cpu and runs_on_cpu():
            # transformers refuses bf16 without an accelerator unless use_cpu is set; with none, the CPU is all there is.
            self.use_cpu = True
        # TRL defaults gradient_checkpointing to True, and transformers warns about that deprecated alias whenever
        # activation_checkpointing is unset; resolve the alias here, silently, to the same value.
        if getattr(self, "activation_checkpointing", False) is None and self.gradient_checkpointing is not None:
            self.activation_checkpointing = self.gradient_checkpointing
        if self.stages:
            # Recipes from YAML give mappings; the stages are kept as given otherwise (names are made in the plan).
            self.stages = stages_from_recipe(self.stages)
            for name in ("per_device_train_batch_size", "num_iterations"):  # the plan divides by both
                value = getattr(self, name)
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise ValueError(f"{name} must be a positive integer, got {value!r}.")
            for i, stage in enumerate(with_resolved_names(self.stages)):  # resolved names for the messages only
                validate_stage(stage, i)
                if stage.advance_when is not None:
                    check_logged(stage.advance_when, f"Stage {i + 1} ('{stage.name}')",
                                 beta=stage.overrides.get("beta", self.beta))
            if self.max_steps > 0:
                raise ValueError(
                    "max_steps is set together with stages. A curriculum's length is the sum of its stages' "
                    "rollout_steps; shorten the stages instead (the CLI's --max_steps_per_stage does that)."
                )
        # GRPOConfig checks its top-level batch fields in __post_init__, before the process count is known here.
        # With stages those fields are not what trains, so it checks values that pass on any process count (a
        # full group per device); they are given back as the user set them, and the plan is checked below.
        given = {name: getattr(self, name) for name in FIRST_STAGE_FIELDS} if self.stages else {}
        if self.stages:
            groups = self.stages[0].num_generations
            neutral = {"num_generations": groups, "per_device_train_batch_size": groups,
                       "gradient_accumulation_steps": 1, "generation_batch_size": None, "steps_per_generation": None}
            for name, value in neutral.items():
                setattr(self, name, value)
        super().__post_init__()
        if self.think_policy not in ("template", "required", "auto", "none"):
            raise ValueError(
                f"think_policy must be 'template', 'required', 'auto' or 'none', got {self.think_policy!r}."
            )
        if self.vllm_weight_sync not in ("nccl", "disk"):
            raise ValueError(f"vllm_weight_sync must be 'nccl' or 'disk', got {self.vllm_weight_sync!r}.")
        if self.max_prompt_length is not None and self.max_prompt_length < 1:
            raise ValueError(f"max_prompt_length must be a positive integer or None, got {self.max_prompt_length}.")
        for name, value in given.items():
            setattr(self, name, value)
        if self.stages:  # fail now, not at a stage boundary, when a batch does not divide
            resolve_plan(self.stages, self.per_device_train_batch_size, self.world_size, self.num_iterations)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if self.stages:
            d["stages"] = [s.to_dict() for s in self.stages]
        return d
