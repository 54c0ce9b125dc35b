"""Each stage's problems: its source loaded once, cut to its length segment, prompts too long for the run dropped."""

from __future__ import annotations

from typing import Any

from .loading import filter_by_prompt_length, load_math_dataset
from .segment import SegmentCache
from .synthetic import make_synthetic_math


def load_stage_datasets(stages: list[Any], train_dataset: Any, names: list[str] | None = None) -> list[Any]:
    """One dataset per stage: a source shared by stages is loaded once and split once.

    A stage without a ``dataset`` takes ``train_dataset``: one ``Dataset`` for all of them, or a dict keyed by the
    stage's name (``names``, the plan's names, default each stage's own).
    """
    names = names or [s.name for s in stages]
    sources: dict[Any, Any] = {}
    segments = SegmentCache()
    result = []
    for index, (stage, name) in enumerate(zip(stages, names, strict=True)):
        where = f"Stage {index + 1} ('{name}')"
        if stage.dataset is None:
            if isinstance(train_dataset, dict):
                if name not in train_dataset:
                    raise ValueError(
                        f"{where} names no dataset and train_dataset has no entry '{name}' "
                        f"(it has {sorted(train_dataset)}). Set the stage's dataset or add that entry."
                    )
                base = train_dataset[name]
            elif train_dataset is None:
                raise ValueError(f"{where} names no dataset and no train_dataset was given. Set the stage's dataset.")
            else:
                base = train_dataset
            key: Any = ("given", id(base))
            sources.setdefault(key, base)
        else:
            key = (stage.dataset, stage.dataset_split, tuple(sorted(stage.dataset_kwargs.items())))
            if key not in sources:
                if stage.dataset == "synthetic":
                    sources[key] = make_synthetic_math(**stage.dataset_kwargs)
                else:
                    sources[key] = load_math_dataset(stage.dataset, split=stage.dataset_split, **stage.dataset_kwargs)
        dataset = sources[key]
        if stage.segment is not None:
            dataset = segments.get(key, lambda d=dataset: d)[stage.segment]
        result.append(dataset)
    return result


def filter_stage_prompts(datasets: list[Any], plans: list[Any], tokenizer: Any, max_prompt_length: int | None) -> list[Any]:
    """Each stage's data without prompts longer than ``max_prompt_length`` tokens (TRL would cut them)."""
    filtered: dict[int, tuple[Any, int]] = {}
    kept_per_stage = []
    for plan, dataset in zip(plans, datasets, strict=True):
        if id(dataset) not in filtered:
            filtered[id(dataset)] = filter_by_prompt_length(dataset, tokenizer, max_prompt_length)
        kept, dropped = filtered[id(dataset)]
        if len(kept) < plan.config.prompts_per_rollout_step:
            raise ValueError(
                f"Stage {plan.index + 1} ('{plan.name}') has {len(kept)} prompts after dropping {dropped} longer "
                f"than max_prompt_length={max_prompt_length} tokens, fewer than its prompts_per_rollout_step "
                f"({plan.config.prompts_per_rollout_step}). Use more data, a larger max_prompt_length or fewer "
                "prompts per rollout step."
            )
        kept_per_stage.append(kept)
    return kept_per_stage
