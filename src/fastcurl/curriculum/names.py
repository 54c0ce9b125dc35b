"""Stage names, made in one place: the name a stage goes by in logs, its checkpoint directory and its Hub branch.

No imports beyond the standard library, so ``fastcurl push`` and the Hub card use the same names as training
without loading TRL.
"""

from __future__ import annotations

from typing import Any


def default_stage_name(stage: Any, index: int) -> str:
    """``<segment>-<length>`` (``L1-8k``), or ``stage<N>-<length>`` for a stage without a segment."""
    length = stage.max_completion_length  # not validated yet: a name is made for the messages of the checks too
    length_text = f"{length // 1024}k" if isinstance(length, int) and length > 0 and length % 1024 == 0 \
        else str(length)
    return f"{stage.segment or 'stage' + str(index + 1)}-{length_text}"


def resolve_stage_names(stages: list[Any]) -> list[str]:
    """Every stage's name, made here once: its own, or a default that repeats get ``-2``, ``-3`` appended to.

    A curriculum may return to the same data and length (FastCuRL's stage 4 is L2 at 16K again), so two unnamed
    stages can share a default; given names must be unique, and are never changed.
    """
    given = [s.name for s in stages if s.name is not None]
    duplicated = sorted({n for n in given if given.count(n) > 1})
    if duplicated:
        raise ValueError(f"Stage names must be unique; repeated: {', '.join(duplicated)}.")
    names: list[str] = []
    for index, stage in enumerate(stages):
        name = stage.name
        if name is None:
            base = default_stage_name(stage, index)
            name, count = base, 1
            while name in names or name in given:
                count += 1
                name = f"{base}-{count}"
        names.append(name)
    return names


def with_resolved_names(stages: list[Any]) -> list[Any]:
    """The stages with their resolved names: copies where a name is made, the given stage objects otherwise.

    Stages are frozen and the user's list is never rewritten; the copies live in the run's plan.
    """
    import dataclasses

    return [s if s.name == name else dataclasses.replace(s, name=name)
            for s, name in zip(stages, resolve_stage_names(stages), strict=True)]


def stage_run_name(index: int, name: str) -> str:
    """``stage-<N>-<name>``: a stage's checkpoint directory and its Hub branch (the same string for both)."""
    return f"stage-{index + 1}-{name}"
