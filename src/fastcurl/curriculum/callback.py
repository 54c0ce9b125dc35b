"""CurriculumCallback: which stage holds at which step, and when to move on.

The callback owns the schedule and the one decision to advance (``should_advance``), in a run and on resume; the
trainer applies a stage to TRL's state when asked. Advancing is by step count by default; a subclass can advance
on a measured condition (say, mean reward) by overriding ``should_advance``. A stage never runs past its
``rollout_steps`` (its maximum). The stage history (which global step each stage began at) is saved in every
checkpoint's trainer state, and a resumed run restores it and asks ``should_advance`` again, so a stage that a
subclass ended early stays ended. A subclass with state of its own extends ``state``/``restore``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import ExportableState

from ..errors import RunInputError
from .advance import rule_holds, rule_metrics
from .plan import StagePlan

# StageBatch fields that depend on the process count (and the per-device batch), not on the recipe's terms.
PER_PROCESS_BATCH_FIELDS = ("per_device_train_batch_size", "gradient_accumulation_steps", "steps_per_generation")
# Stage fields added after checkpoints already held a recipe digest: left out of it at their defaults, so those
# checkpoints still resume.
_LATER_FIELDS = {"advance_when": None, "min_rollout_steps": 0, "drop_solved": False, "dynamic_sampling": False,
                 "max_generation_rounds": 3}


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

    restores_own_state = True  # restored by the trainer's resume_position, not by transformers' callback rebuild

    def __init__(self, plans: list[StagePlan]) -> None:
        self.plans = plans
        self.stage_index = 0
        self.stage_start_steps: list[int] = []
        # The current stage's logged values of the metrics its advance_when reads, and why each stage ended.
        self.history: list[dict[str, float]] = []
        self.end_reasons: dict[int, str] = {}
        # The decision taken at the last update's end ({"step", "over"}): saved, so a resume does not re-decide it
        # from a log the uninterrupted run had not seen yet when it decided.
        self.decision: dict[str, Any] | None = None
        # A resume from a checkpoint of another recipe fails unless this is set (``resume_with_changed_recipe``).
        self.allow_recipe_change = False

    @property
    def recipe_digest(self) -> str:
        """A hash of the resolved stages (settings, updates per stage): what a checkpoint was trained under.

        The batch fields a process count changes are left out, so a run resumes on another number of GPUs.
        """
        return self._digest(per_process_fields=False)

    def _digest(self, per_process_fields: bool) -> str:
        import hashlib
        import json

        configs = [{k: v for k, v in p.config.to_dict().items() if k not in _LATER_FIELDS or v != _LATER_FIELDS[k]}
                   for p in self.plans]
        batches = [{k: v for k, v in vars(p.batch).items() if per_process_fields or k not in PER_PROCESS_BATCH_FIELDS}
                   for p in self.plans]
        resolved = [{"config": c, "batch": b} for c, b in zip(configs, batches)]
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
            self.history = []

    def updates_done(self, state: TrainerState) -> int:
        return state.global_step - self.stage_start_step

    def min_updates(self, plan: StagePlan) -> int:
        per_rollout_step = plan.batch.optimizer_updates // plan.config.rollout_steps
        return plan.config.min_rollout_steps * per_rollout_step

    def should_advance(self, state: TrainerState) -> bool:
        """Whether the current stage is over: all its optimizer updates made, or its ``advance_when`` holds (after
        its ``min_rollout_steps``) on the metrics logged in this stage."""
        plan, done = self.current, self.updates_done(state)
        if done >= plan.batch.optimizer_updates:
            return True
        if plan.config.advance_when is None or done < max(self.min_updates(plan), 1):
            return False
        holds, why = rule_holds(plan.config.advance_when, self.history)
        if holds:
            self.end_reasons[plan.index] = f"advance_when after {done} updates: {why}"
        return holds

    def stage_over(self, state: TrainerState) -> bool:
        """The one test the trainer applies, after every update: advanced, or at the maximum."""
        updates = self.updates_done(state)
        at_maximum = updates >= self.current.batch.optimizer_updates
        over = at_maximum or self.should_advance(state)
        if over and self.current.index not in self.end_reasons:
            self.end_reasons[self.current.index] = (
                f"rollout_steps maximum ({self.current.config.rollout_steps})" if at_maximum
                else f"{type(self).__name__}.should_advance after {updates} of {self.current.batch.optimizer_updates}"
                     " updates")
        return over

    def decided_stage_over(self, state: TrainerState) -> bool:
        """The decision taken at this update's end (it is saved in checkpoints, so a resume reads it rather than
        re-deciding from a log the uninterrupted run had not seen yet); asked again when none was taken here."""
        decision = self.decision
        if decision is not None and (decision["step"], decision.get("stage")) == (state.global_step, self.stage_index):
            return bool(decision["over"])
        from ..run.signals import any_rank

        return any_rank(self.stage_over(state))  # every rank comes here alike (the decision is the same on all)

    def resume_position(self, saved: dict[str, Any] | None, state: TrainerState) -> tuple[int, int]:
        """(stage, optimizer updates already made in it) to continue a run at; ``saved`` is this callback's state
        from the checkpoint (None: a fresh start). Its own saved decision says whether the saved stage is over, so a
        subclass's rule is what a resume follows, not a rule re-derived by the trainer."""
        if not saved:
            self.stage_index, self.stage_start_steps = 0, []
            return 0, 0
        self.restore(saved)
        if self.decided_stage_over(state) and self.stage_index + 1 < len(self.plans):
            return self.stage_index + 1, 0
        return self.stage_index, self.updates_done(state)

    def end_reason(self, index: int) -> str | None:
        return self.end_reasons.get(index)

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs=None, **kwargs):
        rule = self.current.config.advance_when if self.plans and self.stage_start_steps else None
        if rule is not None and logs and "loss" in logs:  # a training log (not eval), the same on every rank
            entry = {m: float(logs[m]) for m in rule_metrics(rule) if m in logs}
            if entry:
                self.history.append(entry)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        if not self.plans:
            return control
        from ..run.signals import any_rank

        # One decision for every rank: a rule's metrics may round differently per rank, and a subclass's
        # should_advance may read per-rank values; ranks that disagreed would wait on each other forever.
        here = self.stage_over(state)
        over = any_rank(here)
        if over and not here:
            self.end_reasons.setdefault(self.stage_index, "advance_when held on another rank"
                                        if self.current.config.advance_when is not None
                                        else f"{type(self).__name__}.should_advance held on another rank")
        self.decision = {"step": state.global_step, "stage": self.stage_index, "over": over}
        if over:
            control.should_epoch_stop = True  # the trainer runs each stage as one pass of its epoch loop
        return control

    def state(self) -> dict[str, Any]:
        return {
            "args": {},
            "attributes": {"stage_index": self.stage_index, "stage_start_steps": list(self.stage_start_steps),
                           "recipe_digest": self.recipe_digest, "history": list(self.history),
                           "end_reasons": {str(k): v for k, v in self.end_reasons.items()},
                           "decision": self.decision},
        }

    def check_recipe(self, digest: str | None) -> None:
        """A checkpoint trained under the recipe digest ``digest`` may be resumed under this plan (None: unknown)."""
        # checkpoints of fastcurl before 2026-12 hashed every batch field (then the same process count resumes)
        accepted = (self.recipe_digest, self._digest(per_process_fields=True))
        if digest is not None and digest not in accepted and not self.allow_recipe_change:
            raise RunInputError(
                f"The checkpoint was trained under another recipe (resolved stages {digest}, this run's "
                f"{self.recipe_digest}): its stage boundaries and batch fields would not match. Resume with the "
                "recipe it was started with, use a new output_dir, or set resume_with_changed_recipe: true to "
                "resume anyway. (A checkpoint of fastcurl before 2026-12-06 resumes only on the process count "
                "it was saved with; another count is the same recipe for later ones.)"
            )

    def restore(self, saved: dict[str, Any]) -> None:
        attributes = saved.get("attributes", {})
        self.check_recipe(attributes.get("recipe_digest"))
        self.stage_index = int(attributes.get("stage_index", 0))
        self.stage_start_steps = [int(s) for s in attributes.get("stage_start_steps", [])]
        self.history = [dict(entry) for entry in attributes.get("history", [])]
        self.end_reasons = {int(k): v for k, v in attributes.get("end_reasons", {}).items()}
        self.decision = attributes.get("decision")


def saved_curriculum_state(saved: dict[str, Any], curriculum: CurriculumCallback) -> dict[str, Any] | None:
    """``curriculum``'s state among a checkpoint's saved callback states, whichever curriculum class saved it.

    transformers keys each state by its callback's class name, so a run trained with a subclass (in a notebook)
    and resumed with another class (``fastcurl train --resume``) would find none, restart the curriculum at stage
    1 and then fail to save. Every curriculum class saves the base format, so the state is taken over under the
    resuming class's name (with a warning: from here its ``should_advance`` decides).
    """
    own = type(curriculum).__name__
    if own not in saved:
        found = [name for name, entry in saved.items()
                 if isinstance(entry, dict) and "recipe_digest" in entry.get("attributes", {})]
        if found:
            import logging

            logging.getLogger(__name__).warning(
                f"The checkpoint's curriculum state was saved by {found[0]}; resuming it with {own}, whose "
                "should_advance decides from here.")
            saved[own] = saved.pop(found[0])
    return saved.get(own)


def check_checkpoint_recipe(checkpoint: str | Path, plans: list[StagePlan], allow_change: bool) -> None:
    """Before any model loads (``fastcurl train --resume``): the checkpoint was trained under these plans.

    The resume itself checks it again when the curriculum restores its state; this only fails sooner.
    """
    import json

    try:
        saved = json.loads((Path(checkpoint) / "trainer_state.json").read_text()).get("stateful_callbacks", {})
    except (OSError, ValueError):
        return  # what is wrong with the checkpoint is reported where it is loaded
    found = [entry for entry in saved.values()
             if isinstance(entry, dict) and "recipe_digest" in entry.get("attributes", {})]
    if found:
        curriculum = CurriculumCallback(plans)
        curriculum.allow_recipe_change = allow_change
        curriculum.check_recipe(found[0]["attributes"]["recipe_digest"])
