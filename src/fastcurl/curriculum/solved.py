"""Solved-prompt filtering between stages (Skywork-OR1's recipe): a stage may leave out what is already solved.

A prompt whose every rollout was right teaches nothing more: its group is flat, its advantages are zero. With
``drop_solved: true`` a stage starts without the prompts that every rollout answered right in the earlier stages
(each of their rollouts, over every time they were drawn). The counts come from the first reward function (the
accuracy reward in FastCuRL's recipes; a score of 1 or more is right), are summed over all ranks after each
update (a prompt's group may be split across ranks) and saved in every checkpoint, so a resumed run drops the same
prompts.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from ..errors import RunInputError


def prompt_key(prompt: Any) -> str:
    """The problem's text: the last message of a conversational prompt, or the prompt itself."""
    return prompt[-1]["content"] if isinstance(prompt, list) else str(prompt)


class SolvedPrompts(TrainerCallback, ExportableState):
    """Counts, per prompt, its rollouts and the right ones; ``solved()`` is every prompt with all of them right."""

    restores_own_state = True  # restored by the trainer's resume_position, not by transformers' callback rebuild

    def __init__(self, last_filtered_stage: int) -> None:
        # What the stages from this one on solve is never read: they are not counted (no gathering every update).
        self.last_filtered_stage = last_filtered_stage
        # stage index -> prompt -> [right, rollouts], over all ranks: a stage drops what the earlier ones solved,
        # whatever it sees itself, so a resume inside it drops the same prompts
        self.counts: dict[int, dict[str, list[int]]] = {}
        self.stage_index = 0
        self._pending: dict[str, list[int]] = {}  # this rank's, since the last update's end
        self._regenerating = False  # resumed inside a rollout step: its generation is counted already
        self.dropped: dict[int, int] = {}  # stage index -> prompts left out of it

    @property
    def counting(self) -> bool:
        return self.stage_index < self.last_filtered_stage

    def observe(self, prompts: list[Any], scores: list[float | None]) -> None:
        if not self.counting:
            return
        for prompt, score in zip(prompts, scores, strict=True):
            entry = self._pending.setdefault(prompt_key(prompt), [0, 0])
            entry[0] += int(score is not None and score >= 1.0)
            entry[1] += 1

    def wrap(self, func: Any) -> Any:
        """``func`` (a reward function) reporting its scores to this tracker."""
        if inspect.iscoroutinefunction(func) or not callable(func):
            return func

        @functools.wraps(func)
        def recorded(*args: Any, **kwargs: Any) -> list:
            scores = func(*args, **kwargs)
            self.observe(kwargs["prompts"], list(scores))
            return scores

        return recorded

    def on_run_begin(self, trainer: Any) -> None:
        if trainer.reward_funcs:
            trainer.reward_funcs = [self.wrap(trainer.reward_funcs[0]), *trainer.reward_funcs[1:]]

    def resumed_inside_rollout_step(self) -> None:
        """A resume between two updates of one rollout step makes TRL generate that step again; its rollouts were
        counted (and saved) at the step's first update, so the next update's observations are left out."""
        self._regenerating = True

    def on_step_end(self, args, state, control, **kwargs):
        import torch.distributed as dist

        pending, self._pending = self._pending, {}
        if self._regenerating:  # set alike on every rank (the same resume point): all of them skip the gather
            self._regenerating = False
            return control
        if not self.counting:  # the same on every rank: all of them skip the gather
            return control
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, pending)
        else:
            gathered = [pending]
        counts = self.counts.setdefault(self.stage_index, {})
        for part in gathered:
            for key, (right, total) in part.items():
                entry = counts.setdefault(key, [0, 0])
                entry[0] += right
                entry[1] += total
        return control

    def solved_before(self, index: int) -> set[str]:
        """The prompts every rollout of which was right, over stages ``0 .. index - 1``."""
        merged: dict[str, list[int]] = {}
        for stage, counts in self.counts.items():
            if stage < index:
                for key, (right, total) in counts.items():
                    entry = merged.setdefault(key, [0, 0])
                    entry[0] += right
                    entry[1] += total
        return {key for key, (right, total) in merged.items() if total and right == total}

    def drop_from(self, dataset: Any, index: int) -> Any:
        """``dataset`` without the prompts solved before stage ``index``; the count goes to its manifest record."""
        solved = self.solved_before(index)
        kept = dataset.filter(lambda prompt: prompt_key(prompt) not in solved, input_columns="prompt")
        self.dropped[index] = len(dataset) - len(kept)
        return kept

    def stage_data(self, dataset: Any, plan: Any) -> Any:
        """Stage ``plan``'s data as it trains on it: without the solved prompts when it says ``drop_solved``."""
        self.stage_index = plan.index
        if not plan.config.drop_solved:
            return dataset
        kept = self.drop_from(dataset, plan.index)
        if len(kept) < plan.config.prompts_per_rollout_step:
            raise RunInputError(
                f"Stage {plan.index + 1} ('{plan.name}') has {len(kept)} prompts left after drop_solved left out "
                f"{self.dropped[plan.index]} solved ones, fewer than its prompts_per_rollout_step "
                f"({plan.config.prompts_per_rollout_step}). Use more data for it or set drop_solved: false.")
        return kept

    def state(self) -> dict[str, Any]:
        return {"args": {}, "attributes": {"counts": {str(k): v for k, v in self.counts.items()},
                                           "dropped": {str(k): v for k, v in self.dropped.items()}}}

    def restore(self, saved: dict[str, Any]) -> None:
        attributes = saved.get("attributes", {})
        self.counts = {int(stage): {k: list(v) for k, v in counts.items()}
                       for stage, counts in attributes.get("counts", {}).items()}
        self.dropped = {int(k): v for k, v in attributes.get("dropped", {}).items()}
