"""The run's plan, resolved once: every stage's name, directory, branch and TRL batch fields.

``resolve_plan`` is the one place a recipe and a process count become per-stage decisions; the trainer, the
callback, ``fastcurl plan``, the stage manifest and the Hub push all read its ``StagePlan``\ s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .names import stage_run_name, with_resolved_names
from .stages import StageBatch, StageConfig, derive_stage_batch, stages_from_recipe, validate_stage

# GRPOConfig's defaults of the two top-level fields a plan reads (a test keeps them equal to TRL's).
PLAN_DEFAULTS = {"per_device_train_batch_size": 8, "num_iterations": 1}


@dataclass(frozen=True)
class StagePlan:
    """A stage and what it resolves to on this run's process count."""

    index: int
    config: StageConfig
    batch: StageBatch

    @property
    def name(self) -> str:
        return self.config.name  # the plan's copy of the stage carries its resolved name (names.with_resolved_names)

    @property
    def run_name(self) -> str:
        """``stage-<N>-<name>``: the stage's checkpoint directory under ``output_dir`` and its Hub branch."""
        return stage_run_name(self.index, self.name)


def resolve_plan(
    stages: Sequence[StageConfig], per_device_train_batch_size: int, num_processes: int, num_iterations: int = 1
) -> list[StagePlan]:
    """One ``StagePlan`` per stage: a pure function of the recipe and the process count (errors name the fix).

    The only caller of ``derive_stage_batch`` and of the stage names: the trainer resolves it with
    ``args.world_size``, the config checks it the same way, ``fastcurl plan`` with ``--num_processes``.
    """
    return [
        StagePlan(index, stage,
                  derive_stage_batch(stage, per_device_train_batch_size, num_processes, num_iterations, index))
        for index, stage in enumerate(with_resolved_names(list(stages)))
    ]


def scheduler_span(plans: Sequence[StagePlan], index: int) -> int:
    """The updates one LR schedule spans from stage ``index``: from the last stage up to it that resets the
    optimizer to the stage before the next one that does (stages that keep the optimizer keep its schedule)."""
    start = index
    while start > 0 and not plans[start].config.reset_optimizer:
        start -= 1
    end = start + 1
    while end < len(plans) and not plans[end].config.reset_optimizer:
        end += 1
    return sum(p.batch.optimizer_updates for p in plans[start:end])


def loop_length(plans: Sequence[StagePlan], dataset_sizes: Sequence[int]) -> dict[str, int]:
    """transformers' training-loop values (``Trainer.set_initial_training_values``' names) for a curriculum: one
    epoch per stage, as long as the first stage; the sum of every stage's maximum updates."""
    first = plans[0]
    prompts_per_update = first.config.prompts_per_update or first.config.prompts_per_rollout_step
    return {
        "num_train_epochs": len(plans),
        "num_update_steps_per_epoch": max(first.batch.optimizer_updates, 1),
        "num_examples": sum(dataset_sizes),
        "num_train_samples": sum(p.config.rollout_steps * p.batch.generation_batch_size for p in plans),
        "total_train_batch_size": prompts_per_update * first.config.num_generations,  # completions per update
        "steps_in_epoch": first.batch.optimizer_updates * first.batch.gradient_accumulation_steps,
        "max_steps": sum(p.batch.optimizer_updates for p in plans),
    }


@dataclass
class StageRow:
    """One stage of the resolved plan."""

    index: int
    name: str
    run_name: str
    data: str
    dataset_size: int | None
    prompts_per_rollout_step: int
    prompts_per_update: int
    num_generations: int
    max_completion_length: int
    rollout_steps: int
    optimizer_updates: int
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    epochs: float | None
    max_generated_tokens: int
    overrides: dict[str, Any]
    min_rollout_steps: int = 0
    advance_when: Any = None
    generation_rounds: int = 1


def read_recipe_stages(recipe: dict[str, Any]) -> tuple[list[StageConfig], int, int]:
    """A recipe mapping's stages (validated), ``per_device_train_batch_size`` and ``num_iterations``.

    Without TRL: what ``fastcurl plan`` needs, in about a second. ``fastcurl train`` validates the rest.
    """
    if not isinstance(recipe, dict) or not recipe.get("stages"):
        raise ValueError("the recipe has no stages: nothing to plan.")
    stages = stages_from_recipe(recipe["stages"])
    for index, stage in enumerate(with_resolved_names(stages)):  # the names only for the messages
        validate_stage(stage, index)
    per_device, num_iterations = (_positive_int(recipe, key) for key in ("per_device_train_batch_size",
                                                                         "num_iterations"))
    return stages, per_device, num_iterations


def _positive_int(recipe: dict[str, Any], key: str) -> int:
    """A top-level count as ``fastcurl train`` would read it (``"4"`` is 4), or an error naming the field."""
    value = recipe.get(key, PLAN_DEFAULTS[key])
    try:
        number = int(value) if not isinstance(value, (bool, float)) else None
    except (TypeError, ValueError):
        number = None
    if number is None or number < 1:
        raise ValueError(f"{key} must be a positive integer, got {value!r}.")
    return number


def plan_curriculum(plans: Sequence[StagePlan], dataset_sizes: list[int | None]) -> list[StageRow]:
    """The stage table of a resolved plan: its batch fields, epochs over each stage's data, the token bound."""
    rows = []
    for plan, size in zip(plans, dataset_sizes, strict=True):
        index, stage, batch = plan.index, plan.config, plan.batch
        prompts = stage.rollout_steps * stage.prompts_per_rollout_step
        source = stage.dataset or "train_dataset"
        rows.append(
            StageRow(
                index=index,
                name=plan.name,
                run_name=plan.run_name,
                data=f"{source}{' [' + stage.segment + ']' if stage.segment else ''}",
                dataset_size=size,
                prompts_per_rollout_step=stage.prompts_per_rollout_step,
                prompts_per_update=stage.prompts_per_update or stage.prompts_per_rollout_step,
                num_generations=stage.num_generations,
                max_completion_length=stage.max_completion_length,
                rollout_steps=stage.rollout_steps,
                optimizer_updates=batch.optimizer_updates,
                per_device_train_batch_size=batch.per_device_train_batch_size,
                gradient_accumulation_steps=batch.gradient_accumulation_steps,
                epochs=prompts / size if size else None,
                # dynamic sampling may generate every round of a rollout step
                max_generated_tokens=prompts * stage.num_generations * stage.max_completion_length
                * (stage.max_generation_rounds if stage.dynamic_sampling else 1),
                overrides=dict(stage.overrides),
                min_rollout_steps=stage.min_rollout_steps,
                advance_when=stage.advance_when,
                generation_rounds=stage.max_generation_rounds if stage.dynamic_sampling else 1,
            )
        )
    return rows


def describe_rule(rule: Any) -> str:
    from .advance import _conditions

    mode, conditions = _conditions(rule)
    parts = []
    for c in conditions:
        test = next(t for t in ("above", "below", "plateau") if t in c)
        parts.append(f"{c['metric']} {test} {c[test]} (window {c.get('window', 1)})")
    return f" {'or' if mode == 'any' else 'and'} ".join(parts)


def format_plan(rows: list[StageRow], num_processes: int) -> str:
    """The table a user reads before launching, then the totals."""
    header = ["stage", "data", "size", "prompts/step", "prompts/update", "rollouts", "max tokens", "rollout steps",
              "updates", "epochs", "generated tokens <="]
    body = []
    for r in rows:
        body.append([
            f"{r.index + 1} {r.name}", r.data, f"{r.dataset_size:,}" if r.dataset_size is not None else "?",
            str(r.prompts_per_rollout_step), str(r.prompts_per_update), str(r.num_generations),
            f"{r.max_completion_length:,}", f"{r.rollout_steps:,}", f"{r.optimizer_updates:,}",
            f"{r.epochs:.2f}" if r.epochs is not None else "?", f"{r.max_generated_tokens:,}",
        ])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)) for b in body]
    total_tokens = sum(r.max_generated_tokens for r in rows)
    lines.append(
        f"total: {sum(r.rollout_steps for r in rows):,} rollout steps, {sum(r.optimizer_updates for r in rows):,} "
        f"optimizer updates, at most {total_tokens:,} generated tokens "
        f"({total_tokens / 1e9:.2f}B) on {num_processes} training process(es)"
    )
    for r in rows:
        details = [f"per-device batch {r.per_device_train_batch_size} x {r.gradient_accumulation_steps} accumulation"]
        details += [f"{k}={v}" for k, v in sorted(r.overrides.items())]
        if r.advance_when is not None:  # the table shows the maximum; the stage may end from its minimum on
            details.append(f"adaptive: {r.min_rollout_steps:,} to {r.rollout_steps:,} rollout steps, advances when "
                           f"{describe_rule(r.advance_when)}")
        if r.generation_rounds > 1:
            details.append(f"dynamic sampling: up to {r.generation_rounds} generation rounds per rollout step")
        lines.append(f"  stage {r.index + 1}: " + ", ".join(details))
    if any(r.dataset_size is not None for r in rows):
        lines.append("size: the stage's problems before training drops those whose prompt is longer than "
                     "max_prompt_length (stage_manifest.json records the size trained on)")
    return "\n".join(lines)
