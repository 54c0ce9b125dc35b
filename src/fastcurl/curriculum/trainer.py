"""CurriculumGRPOTrainer: GRPOTrainer that runs every stage of a curriculum inside one ``.train()``.

The trainer is the stage mechanism and nothing else. ``Trainer._inner_training_loop`` runs one pass of its epoch
loop per *stage* (the hooks into that loop are in ``transformers_hooks``). Before a stage's pass the trainer
applies the stage to TRL's state (data, every copy of the length, batch fields, per-stage settings, reference
model, optimizer and schedule) and builds the stage's dataloader with TRL's own ``get_train_dataloader``; the
pass ends when ``CurriculumCallback`` says the stage is over. Global step, logs, progress bar, checkpoints and
resume stay those of one run. What a run does around the stages (the output_dir lock, SIGTERM, stage checkpoints,
manifests, Hub pushes, metrics, the no-op guard) are callbacks in ``fastcurl.run``, which the trainer reaches
through its ``fastcurl.run.events.RunEvents`` base (the run's events, a stage's end, ``train()``).

With a plain ``GRPOConfig`` (no stages) nothing here changes GRPOTrainer's behaviour: it is one implicit stage.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("DS_ACCELERATOR", "cpu")  # before DeepSpeed's import: else it warns it found no GPU
from accelerate.utils import is_peft_model
from datasets import Dataset
from torch.utils.data import Sampler
from transformers import AutoProcessor, PreTrainedModel
from trl import GRPOTrainer
from trl.trainer.callbacks import SyncRefModelCallback

from ..data import filter_stage_prompts, load_stage_datasets
from ..generation.vllm_server import server_generation
from ..rewards.think import apply_think_policy
from ..run import HubPushCallback, standard_run_callbacks
from ..run.console import quiet_library_bars, set_up_console, silence_library_deprecations, verbose, warn
from ..run.events import RunEvents
from ..run.gloo_exit import wait_for_gloo_threads_at_exit
from ..run.metrics import validation_sets
from ..run.stage_checkpoints import restore_reference
from .advance import check_rules_read_rewards
from .callback import CurriculumCallback, saved_curriculum_state
from .config import FastCuRLConfig, StageConfig, private_copy, set_first_stage
from .dynamic_sampling import generate_with_dynamic_sampling
from .plan import StagePlan, loop_length, resolve_plan, scheduler_span
from .sampler import StageSampler
from .solved import SolvedPrompts
from .stages import STAGE_FIELD_TARGETS, bind_length_rewards, check_peft_reference, set_max_completion_length
from .transformers_hooks import (TrainingValues, TransformersLoopHooks, check_trainer_attributes, check_transformers,
                                 refill_deepspeed_config, replace_scheduler, reset_generation_buffer,
                                 set_deepspeed_batch)

check_transformers()  # the private hooks overridden must have the signatures they are written against

logger = logging.getLogger(__name__)


class CurriculumGRPOTrainer(TransformersLoopHooks, RunEvents, GRPOTrainer):
    """GRPOTrainer with a stage schedule (``FastCuRLConfig.stages``) applied inside one ``.train()`` call.

    Each stage switches the data, ``max_completion_length``, the rollouts per prompt and the batch at an exact
    optimizer update, starts from the previous stage's policy (its new KL reference) with a fresh optimizer, and
    ends with a checkpoint in ``output_dir/stage-<N>-<name>/``. One global step, one progress bar, one log.
    With a plain ``GRPOConfig`` (no stages) it behaves exactly like ``GRPOTrainer``.

    Args:
        model: Hub id, local directory or a loaded causal LM (as ``GRPOTrainer``).
        reward_funcs: One reward function or a list, in TRL's interface (``fastcurl.rewards.accuracy_reward`` is
            FastCuRL's). A function that raises scores that sample 0, up to ``args.reward_error_limit`` errors.
        args: A ``FastCuRLConfig`` (or a ``GRPOConfig`` for one implicit stage).
        train_dataset: The data for stages that name no ``dataset``: one ``Dataset`` for all of them, or a dict
            keyed by stage name. Needs a ``prompt`` and a ``ground_truth`` column for the accuracy reward.
        eval_dataset: As ``GRPOTrainer``; by default built from ``args.eval_benchmarks``.
        processing_class: The tokenizer; loaded from ``model`` when omitted.
        callbacks: Extra ``TrainerCallback``\ s; the curriculum's callback is added by the trainer itself.
        run_callbacks: The run features (``fastcurl.run``): the output_dir lock, SIGTERM, stage checkpoints,
            fail-soft rewards, metrics, the no-op guard, manifests, the stage summary line, Hub pushes. None
            attaches the standard set
            (``fastcurl.run.standard_run_callbacks``); a list attaches exactly those (``[]``: none).
        **kwargs: Passed to ``GRPOTrainer`` (``peft_config``, ...).

    Example (the README's "A curriculum in Python" has FastCuRL's stages)::

        config = FastCuRLConfig(output_dir="runs/demo", stages=[
            StageConfig(dataset="data/L2.parquet", segment="L1", max_completion_length=8192, rollout_steps=160),
            StageConfig(dataset="data/L2.parquet", segment="L2", max_completion_length=16384, rollout_steps=590)])
        trainer = CurriculumGRPOTrainer("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", accuracy_reward, args=config)
        trainer.train()            # trainer.train(resume_from_checkpoint=True) continues a killed run
    """

    _tag_names = ["trl", "grpo", "fastcurl", "curriculum"]
    # The callback that decides when a stage ends; a subclass of the trainer may name its own (see its docs).
    curriculum_class: type[CurriculumCallback] = CurriculumCallback

    def __init__(
        self,
        model: str | PreTrainedModel,
        reward_funcs: Any,
        args: FastCuRLConfig | Any = None,
        train_dataset: Dataset | dict[str, Dataset] | None = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        callbacks: list | None = None,
        run_callbacks: list | None = None,
        **kwargs: Any,
    ) -> None:
        silence_library_deprecations()
        self.args_as_given = args.to_dict() if args is not None else None  # what the run manifest records
        args = private_copy(args) if args is not None else None  # the caller's config keeps its values
        given: list[StageConfig] = list(getattr(args, "stages", None) or [])
        plans = resolve_plan(given, args.per_device_train_batch_size, args.world_size, args.num_iterations) \
            if given else []
        stages = [p.config for p in plans]  # named (the plan resolves unnamed stages' names)
        self.stage_datasets: list[Dataset] = []
        construction: list[str] = []
        if plans:
            if kwargs.get("peft_config") is not None or (not isinstance(model, str) and is_peft_model(model)):
                check_peft_reference(stages, args.beta)
            with quiet_library_bars(not verbose(args)):  # before any model loads
                self.stage_datasets = load_stage_datasets(stages, train_dataset)
            train_dataset = self.stage_datasets[0]
            self._base_values, construction = set_first_stage(args, plans)
            refill_deepspeed_config(args, plans)
        # With push_to_hub the run pushes stage branches and the final model itself (fastcurl.run.HubPushCallback);
        # transformers' own per-checkpoint pushes to main would interleave with them, so they stay off.
        push_stages = bool(getattr(args, "push_to_hub", False)) and bool(plans)
        if push_stages:
            args.push_to_hub = False
        if run_callbacks is None:
            run_callbacks = standard_run_callbacks(args, push_to_hub=push_stages)
        elif push_stages and not any(isinstance(c, HubPushCallback) for c in run_callbacks):
            warn(logger, "push_to_hub is set but run_callbacks has no HubPushCallback: nothing will be pushed. Add "
                 "fastcurl.run.HubPushCallback, or leave run_callbacks unset for the standard set.")
        for callback in run_callbacks:  # before the model loads: a run feature that cannot work fails first
            getattr(callback, "on_init", lambda args: None)(args)
        setting = getattr(args, "think_policy", None)
        if processing_class is None and isinstance(model, str) and (plans or setting is not None):
            processing_class = AutoProcessor.from_pretrained(model, trust_remote_code=args.trust_remote_code)
        reward_funcs, self.think_policy = apply_think_policy(reward_funcs, setting, processing_class,
                                                             announce=os.environ.get("RANK", "0") == "0")
        check_rules_read_rewards(stages, reward_funcs)
        with server_generation(model, args, [s.max_completion_length for s in stages]), \
                quiet_library_bars(not verbose(args)):
            super().__init__(model=model, reward_funcs=reward_funcs, args=args, train_dataset=train_dataset,
                             eval_dataset=validation_sets(args) if eval_dataset is None else eval_dataset,
                             processing_class=processing_class, callbacks=callbacks, **kwargs)
        check_trainer_attributes(self)
        wait_for_gloo_threads_at_exit()  # a rank that finished must not abort at exit (run/gloo_exit.py)
        for name in construction:
            setattr(self.args, name, self._base_values[name])
        if plans:
            with quiet_library_bars(not verbose(self.args)):
                tokenizer = getattr(self.processing_class, "tokenizer", self.processing_class)
                self.stage_datasets = filter_stage_prompts(self.stage_datasets, plans, tokenizer,
                                                           self.args.max_prompt_length)
        set_up_console(self)
        bind_length_rewards(self.reward_funcs, self.max_completion_length)
        self.curriculum = self.curriculum_class(plans)
        self.curriculum.allow_recipe_change = bool(getattr(self.args, "resume_with_changed_recipe", False))
        self.add_callback(self.curriculum)
        filtered = [p.index for p in plans if p.config.drop_solved]
        self.solved_prompts = SolvedPrompts(last_filtered_stage=max(filtered)) if filtered else None
        if self.solved_prompts is not None:
            self.add_callback(self.solved_prompts)
        for callback in run_callbacks:
            self.add_callback(callback)

    @property
    def curriculum_active(self) -> bool:
        return bool(getattr(self, "curriculum", None) and self.curriculum.plans)

    # ------------------------------------------------------------------------------------- applying one stage

    def _enter_stage(self, index: int, *, resumed_updates: int | None) -> StagePlan:
        """Make stage ``index`` current. ``resumed_updates`` counts its updates already made before a resume."""
        plan = self.curriculum.plans[index]
        stage, batch = plan.config, plan.batch
        self.curriculum.begin_stage(index, self.state.global_step)
        self.args.gradient_accumulation_steps = batch.gradient_accumulation_steps
        set_deepspeed_batch(self, batch.per_device_train_batch_size, batch.gradient_accumulation_steps)
        self.args.steps_per_generation = batch.steps_per_generation
        self.args.generation_batch_size = batch.generation_batch_size
        self.args.num_generations = self.num_generations = stage.num_generations
        set_max_completion_length(self, stage.max_completion_length)
        for name, apply in STAGE_FIELD_TARGETS.items():  # each field where TRL reads it (curriculum/stages.py)
            value = stage.overrides.get(name, self._base_values[name])
            setattr(self.args, name, value)
            apply(self, value)
        self.train_dataset = self.stage_datasets[index]
        if self.solved_prompts is not None:
            self.train_dataset = self.solved_prompts.stage_data(self.train_dataset, plan)
        # Completions buffered for the previous stage's batch shape must not leak into this one, and the
        # micro-step counter decides which slice of a generation batch a step trains on.
        micro_step = (resumed_updates or 0) * batch.gradient_accumulation_steps
        reset_generation_buffer(self, micro_step)
        if self.solved_prompts is not None and micro_step % (batch.steps_per_generation * self.num_iterations):
            self.solved_prompts.resumed_inside_rollout_step()
        if resumed_updates is not None and index > 0 and stage.reset_reference and self.ref_model is not None:
            restore_reference(self, index)
        if resumed_updates is None and index > 0:
            if stage.reset_reference and self.ref_model is not None:
                model = self.accelerator.unwrap_model(self.model_wrapped)
                SyncRefModelCallback.sync_target_model(model, self.ref_model, alpha=1.0)
            if stage.reset_optimizer:
                self.optimizer.state.clear()
                for group in self.optimizer.param_groups:
                    group["lr"] = group["initial_lr"] = self.args.learning_rate
                replace_scheduler(self)
        return plan

    def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
        """The LR schedule spans the updates from the current stage's last optimizer reset up to the next one."""
        if self.curriculum_active:
            num_training_steps = scheduler_span(self.curriculum.plans, self.curriculum.stage_index)
        return super().create_scheduler(num_training_steps=num_training_steps, optimizer=optimizer)

    # ---------------------------------------------------------- the loop's mechanism (see transformers_hooks)

    def loop_values(self) -> TrainingValues:
        """The loop's length: one epoch per stage, the sum of every stage's maximum updates (``plan.loop_length``)."""
        return TrainingValues(**loop_length(self.curriculum.plans, [len(d) for d in self.stage_datasets]))

    def resume_position(self, resumed: bool) -> tuple[int, int]:
        """(stage, micro-steps done in it) to continue at: the callback restores its saved state and decides."""
        saved = self.state.stateful_callbacks if resumed else {}
        index, updates = self.curriculum.resume_position(saved_curriculum_state(saved, self.curriculum), self.state)
        saved.setdefault(type(self.curriculum).__name__, self.curriculum.state())  # transformers saves into it
        if self.solved_prompts is not None and saved.get(SolvedPrompts.__name__):
            self.solved_prompts.restore(saved[SolvedPrompts.__name__])
        elif self.solved_prompts is not None:  # transformers saves into the key it loaded, which must exist
            saved[SolvedPrompts.__name__] = self.solved_prompts.state()
        return index, updates * self.curriculum.plans[index].batch.gradient_accumulation_steps

    def run_stage(self, index: int, resuming: bool, run_pass: Callable[[Any, int, int], None]) -> None:
        """One stage: entered, run as one pass of the loop until the callback ends it, then finished."""
        resumed_updates = None
        if resuming and len(self.curriculum.stage_start_steps) > index:
            resumed_updates = self.state.global_step - self.curriculum.stage_start_steps[index]
        if resuming and resumed_updates is None and index > 0:
            self._complete_stage_end(index - 1)
        plan = self._enter_stage(index, resumed_updates=resumed_updates)
        self._run_event("on_stage_begin", plan=plan, resumed=resumed_updates is not None)
        started = time.monotonic()
        logger.info(f"Stage {index + 1}/{len(self.curriculum.plans)} '{plan.name}': at most {plan.config.rollout_steps} "
                    f"rollout steps ({plan.batch.optimizer_updates} updates), max_completion_length="
                    f"{plan.config.max_completion_length}, {len(self.train_dataset)} prompts")
        if resumed_updates is not None and self.curriculum.decided_stage_over(self.state):  # a finished run: no pass
            self._complete_stage_end(index)  # only what is missing of its end (a last stage ended early included)
            return
        run_pass(self.get_train_dataloader(), plan.batch.optimizer_updates * plan.batch.gradient_accumulation_steps,
                 plan.batch.optimizer_updates)
        if self.curriculum.decided_stage_over(self.state):  # not when SIGTERM or max_steps stopped it
            self._finish_stage(plan, time.monotonic() - started)

    def stage_sampler(self, sampler: Sampler) -> Sampler:
        """TRL's sampler for the current stage: reseeded per stage, long enough for the stage's maximum."""
        plan = self.curriculum.current
        if plan.index > 0 and getattr(sampler, "generator", None) is not None:
            sampler.generator.manual_seed(self.args.seed + plan.index)  # stages sharing data: not the same order
        per_rollout = plan.batch.generation_batch_size * plan.batch.steps_per_generation * self.num_iterations
        return StageSampler(sampler, plan.config.rollout_steps * per_rollout)

    def generate_rollout_step(self, inputs: list[dict[str, Any]], generate: Callable[[list], dict]) -> dict[str, Any]:
        """TRL's generation and scoring (``generate``); a ``dynamic_sampling`` stage keeps groups with a spread."""
        stage = self.curriculum.current.config if self.curriculum_active else None
        if stage is None or not stage.dynamic_sampling or not self.model.training:
            return generate(inputs)
        return generate_with_dynamic_sampling(self, inputs, stage.max_generation_rounds, generate)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        logs["curriculum/stage"] = float(self.curriculum.stage_index if self.curriculum_active else 0)
        self._run_event("on_metrics", logs=logs, training=self.model.training)
        super().log(logs, start_time)
