"""CurriculumCallback: which stage holds at which step, and when to move on.

The callback owns the schedule and the one decision to advance (``should_advance``), in a run and on resume; the
trainer applies a stage to TRL's state when asked. Advancing is by step count by default; a subclass can advance
on a measured condition (say, mean reward) by overriding ``should_advance``. A stage never runs past its
``rollout_steps`` (its maximum). The stage history (which global step each stage began at) is saved in every
checkpoint's trainer state, and a resumed run restores it and asks ``should_advance`` again, so a stage that a
subclass ended early stays ended. A subclass with state of its own extends ``state``/``restore``.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import ExportableState

from .plan import StagePlan


class CurriculumCallback(TrainerCallback, ExportableState):
    """Holds the stage schedule and decides when the current stage ends.

    ``CurriculumGRPOTrainer`` builds and attaches it (``trainer.curriculum``); its state (current stage, the
    global step each stage began at) is saved in every checkpoint and restored on resume.

    Args:
        plans: One ``StagePlan`` per stage, in order: the stage's config and its TRL batch fields.

    Example, a stage that ends early once its mean reward passes 0.6 (after at least 20 updates)::

        class RewardCurriculum(CurriculumCallback):
            def __init__(self, plans):
                super().__init__(plans)
                self.last_reward = 0.0

            def on_log(self, args, state, control, logs=None, **kwargs):
                self.last_reward = (logs or {}).get("reward", self.last_reward)

            def should_advance(self, state):
                done = self.updates_done(state)
                return super().should_advance(state) or (done >= 20 and self.last_reward > 0.6)

            # What the decision reads is saved in every checkpoint, so a resumed run decides alike.
            def state(self):
                saved = super().state()
                saved["attributes"]["last_reward"] = self.last_reward
                return saved

            def restore(self, saved):
                super().restore(saved)
                self.last_reward = saved["attributes"].get("last_reward", 0.0)

        class RewardCurriculumTrainer(CurriculumGRPOTrainer):
            curriculum_class = RewardCurriculum
    """

    def __init__(self, plans: list[StagePlan]) -> None:
        self.plans = plans
        self.stage_index = 0
        self.stage_start_steps: list[int] = []
        # A resume from a checkpoint of another recipe fails unless this is set (``resume_with_changed_recipe``).
        self.allow_recipe_change = False

    @property
    def recipe_digest(self) -> str:
        """A hash of the resolved stages (settings and batch fields): what a checkpoint was trained under."""
        import hashlib
        import json

        resolved = [{"config": p.config.to_dict(), "batch": vars(p.batch)} for p in self.plans]
        return hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def current(self) -> StagePlan:
        return self.plans[self.stage_index]

    @property
    def stage_start_step(self) -> int:
        return self.stage_start_steps[self.stage_index]

    def begin_stage(self, index: int, global_step: int) -> None:
        """Record that stage ``index`` starts at ``global_step`` (a resumed stage keeps its recorded start)."""
        self.stage_index = index
        if len(self.stage_start_steps) <= index:
            self.stage_start_steps.append(global_step)

    def updates_done(self, state: TrainerState) -> int:
        return state.global_step - self.stage_start_step

    def should_advance(self, state: TrainerState) -> bool:
        """Whether the current stage is over. The default rule: it has made all its optimizer updates."""
        return self.updates_done(state) >= self.current.batch.optimizer_updates

    def stage_over(self, state: TrainerState) -> bool:
        """The one test the trainer applies, after every update and on resume: advanced, or at the maximum."""
        return self.updates_done(state) >= self.current.batch.optimizer_updates or self.should_advance(state)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        if self.plans and self.stage_over(state):
            control.should_epoch_stop = True  # the trainer runs each stage as one pass of its epoch loop
        return control

    def state(self) -> dict[str, Any]:
        return {
            "args": {},
            "attributes": {"stage_index": self.stage_index, "stage_start_steps": list(self.stage_start_steps),
                           "recipe_digest": self.recipe_digest},
        }

    def restore(self, saved: dict[str, Any]) -> None:
        attributes = saved.get("attributes", {})
        digest = attributes.get("recipe_digest")
        if digest is not None and digest != self.recipe_digest and not self.allow_recipe_change:
            raise ValueError(
                f"The checkpoint was trained under another recipe (resolved stages {digest}, this run's "
                f"{self.recipe_digest}): its stage boundaries and batch fields would not match. Resume with the "
                "recipe it was started with, use a new output_dir, or set resume_with_changed_recipe: true to "
                "resume anyway."
            )
        self.stage_index = int(attributes.get("stage_index", 0))
        self.stage_start_steps = [int(s) for s in attributes.get("stage_start_steps", [])]
