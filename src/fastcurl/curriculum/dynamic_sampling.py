"""Dynamic sampling (DAPO; verl's ``filter_groups``): a rollout step trains only on groups that carry a gradient.

A group whose completions all got the same reward has zero advantage spread: GRPO learns nothing from it, yet it
fills the batch. With ``dynamic_sampling: true`` a stage drops such groups and generates for more prompts, up to
``max_generation_rounds`` rounds in all, until the rollout step holds as many groups with a spread as it has room
for. What is still missing after the last round is filled with the flat groups of the latest rounds, so every
update keeps its size (they add no policy gradient; verl raises instead).

Groups stay whole and the count stays equal on every rank: each rank's generation batch holds whole groups (the
plan requires ``prompts_per_rollout_step`` to divide by the process count), every rank keeps exactly its share of
groups, and every rank runs the same number of rounds (decided on the counts of all ranks), so the collective
calls inside generation (vLLM server mode, reward gathering) stay in step. The extra rounds' prompts are drawn
from the stage's data by a generator seeded from the seed, the stage and the update: a resumed run draws the same.

Logged per rollout step: ``dynamic_sampling/rounds``, ``dynamic_sampling/kept_share`` (generated groups with a
spread, over all ranks) and ``dynamic_sampling/groups_with_gradient`` (their share of the trained batch).
TRL's own metrics (reward, lengths, ``num_tokens``) cover every round generated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .transformers_hooks import train_metrics

# Advantage spread within a group below which the group is flat (rewards equal up to float rounding).
FLAT_SPREAD = 1e-6
# Output fields of TRL's _generate_and_score_completions that are padded per round: on the left for prompts, on
# the right for completions and every per-token value. Others are per completion (advantages) or recomputed.
_LEFT_PADDED = {"prompt_ids": "pad", "prompt_mask": 0}
_UNSUPPORTED = ("pixel_values", "image_grid_thw", "pixel_attention_mask", "spatial_shapes", "image_sizes")


def group_has_spread(advantages: torch.Tensor, num_generations: int) -> torch.Tensor:
    """Per group of ``num_generations`` consecutive completions: whether their advantages differ."""
    grouped = advantages.view(-1, num_generations)
    return (grouped.amax(dim=1) - grouped.amin(dim=1)) > FLAT_SPREAD


def draw_prompts(dataset: Any, count: int, num_generations: int, seed: int, process_index: int,
                 num_processes: int) -> list[dict[str, Any]]:
    """``count`` prompts of ``dataset`` for this rank, each repeated ``num_generations`` times, as TRL's sampler
    lays them out. The same ``seed`` draws the same prompts on every rank; each rank takes its own slice."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(dataset), generator=generator).tolist()
    wanted = count * num_processes
    order = (order * (wanted // len(order) + 1))[:wanted]  # a small dataset is drawn from again
    mine = order[process_index * count:(process_index + 1) * count]
    return [dict(dataset[index]) for index in mine for _ in range(num_generations)]


def _pad(tensor: torch.Tensor, width: int, value: Any, left: bool) -> torch.Tensor:
    missing = width - tensor.size(1)
    if missing <= 0:
        return tensor
    shape = (tensor.size(0), missing, *tensor.shape[2:])
    filler = torch.full(shape, value, dtype=tensor.dtype, device=tensor.device)
    return torch.cat([filler, tensor] if left else [tensor, filler], dim=1)


def merge_groups(batches: list[dict[str, Any]], chosen: list[tuple[int, int]], num_generations: int,
                 pad_token_id: int) -> dict[str, Any]:
    """One generation batch of the ``chosen`` (round, group) pairs, its fields padded to a common width."""
    merged: dict[str, Any] = {}
    for key, first in batches[0].items():
        if key == "num_items_in_batch" or not isinstance(first, torch.Tensor) or first.dim() == 0:
            continue
        rows = [batches[r][key][g * num_generations:(g + 1) * num_generations] for r, g in chosen]
        if first.dim() > 1:
            left = key in _LEFT_PADDED
            value = pad_token_id if _LEFT_PADDED.get(key) == "pad" else 0
            width = max(row.size(1) for row in rows)
            rows = [_pad(row, width, value, left) for row in rows]
        merged[key] = torch.cat(rows, dim=0)
    return merged


def generate_with_dynamic_sampling(trainer: Any, inputs: list[dict[str, Any]], max_rounds: int,
                                   generate: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> dict[str, Any]:
    """``generate`` (TRL's ``_generate_and_score_completions``) for up to ``max_rounds`` rounds of prompts; the
    generation batch of the groups with an advantage spread (then flat ones, if short), as ``generate`` returns."""
    accelerator = trainer.accelerator
    num_generations = trainer.num_generations
    if len(inputs) % num_generations:
        raise ValueError(f"dynamic_sampling needs whole groups on each process, but this process holds {len(inputs)} "
                         f"completions for groups of {num_generations}: make prompts_per_rollout_step a multiple of "
                         f"the process count ({accelerator.num_processes}).")
    wanted = len(inputs) // num_generations
    for start in range(0, len(inputs), num_generations):
        if any(row["prompt"] != inputs[start]["prompt"] for row in inputs[start:start + num_generations]):
            raise RuntimeError("dynamic_sampling found a group whose completions answer different prompts: TRL's "
                               "sampler no longer lays out each prompt's rollouts together on one process.")
    batches: list[dict[str, Any]] = []
    kept: list[tuple[int, int]] = []
    flat: list[tuple[int, int]] = []
    generated = kept_total = 0
    stage = trainer.curriculum.stage_index if trainer.curriculum_active else 0
    for round_index in range(max_rounds):
        if round_index:
            seed = ((trainer.args.seed * 1_000_003 + stage) * 1_000_003 + trainer.state.global_step) * 64 + round_index
            inputs = draw_prompts(trainer.train_dataset, wanted, num_generations, seed, accelerator.process_index,
                                  accelerator.num_processes)
        batch = generate(inputs)
        if round_index == 0 and any(key in batch for key in _UNSUPPORTED):
            raise ValueError("dynamic_sampling does not support image inputs; set dynamic_sampling: false.")
        batches.append(batch)
        spread = group_has_spread(batch["advantages"], num_generations).tolist()
        kept += [(round_index, g) for g, has in enumerate(spread) if has]
        flat = [(round_index, g) for g, has in enumerate(spread) if not has] + flat  # newest first
        counts = accelerator.gather(torch.tensor([len(kept), sum(spread), len(spread)],
                                                 device=accelerator.device)).view(-1, 3)
        kept_total += int(counts[:, 1].sum())
        generated += int(counts[:, 2].sum())
        if int(counts[:, 0].min()) >= wanted:  # every rank has its share: the same decision on all of them
            break
    chosen = (kept + flat)[:wanted]
    tokenizer = getattr(trainer.processing_class, "tokenizer", trainer.processing_class)
    merged = merge_groups(batches, chosen, num_generations, tokenizer.pad_token_id)
    mask = merged["completion_mask"] * merged["tool_mask"] if "tool_mask" in merged else merged["completion_mask"]
    merged["num_items_in_batch"] = accelerator.gather(mask.sum()).sum()
    with_gradient = accelerator.gather(torch.tensor([min(len(kept), wanted)], device=accelerator.device)).sum()
    metrics = train_metrics(trainer)
    metrics["dynamic_sampling/rounds"].append(float(len(batches)))
    metrics["dynamic_sampling/kept_share"].append(kept_total / max(generated, 1))
    metrics["dynamic_sampling/groups_with_gradient"].append(float(with_gradient) / (wanted * accelerator.num_processes))
    return merged
