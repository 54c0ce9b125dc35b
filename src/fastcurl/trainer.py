"""CurriculumGRPOTrainer: GRPOTrainer that runs every stage of a curriculum inside one ``.train()``.

How it fits into transformers' loop: ``Trainer._inner_training_loop`` runs ``_run_epoch`` once per epoch. Here
each *stage* is one such pass. Before a stage's pass the trainer applies the stage to TRL's state (data, lengths,
batch fields, per-stage settings, reference model, optimizer) and builds the stage's dataloader with TRL's own
``get_train_dataloader``; the pass then runs exactly the stage's optimizer updates. Global step, logs, progress
bar, checkpoints and resume stay those of one run. The decision to end a stage lives in ``CurriculumCallback``.

With a plain ``GRPOConfig`` (no stages) nothing here changes GRPOTrainer's behaviour: it is one implicit stage.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import time
from contextlib import nullcontext
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("DS_ACCELERATOR", "cpu")  # before DeepSpeed's import: else it warns it found no GPU
from accelerate.utils import is_peft_model
from datasets import Dataset
from torch import nn
from torch.utils.data import Sampler
from transformers import AutoProcessor, PreTrainedModel
from transformers.trainer_utils import rotate_checkpoints
from trl import GRPOTrainer
from trl.trainer.callbacks import SyncRefModelCallback

from .console import quiet_library_bars, silence_library_deprecations, use_stage_progress, verbose
from .config import STAGE_OVERRIDABLE_FIELDS, FastCuRLConfig, StageConfig
from .curriculum import CurriculumCallback
from .plan import StagePlan, resolve_plan
from .data import SegmentCache, filter_by_prompt_length, load_math_dataset, make_synthetic_math
from .guard import NoLearningGuard
from .manifest import link_or_copy, read_stage_manifest
from .run import HubPushCallback, standard_run_callbacks
from .safety import (
    STAGING_DIR,
    FaultInjectionCallback,
    GracefulStop,
    fail_soft_reward,
    fault_point,
    find_last_checkpoint,
)
from .transformers_hooks import TrainingValues, check_transformers
from .vllm_server import disk_sync_client, preflight

check_transformers()  # the private hooks overridden below must have the signatures they are written against

logger = logging.getLogger(__name__)

SAMPLING_FIELDS = ("top_p", "top_k", "min_p", "repetition_penalty")


class StageSampler(Sampler[int]):
    """TRL's RepeatSampler, cycled over as many passes as a stage needs and cut at the stage's length.

    Each pass reshuffles (the sampler's generator advances), like epochs over the stage's data.
    """

    def __init__(self, base: Sampler[int], num_indices: int) -> None:
        self.base = base
        self.num_indices = num_indices

    def __iter__(self) -> Iterator[int]:
        produced = 0
        while produced < self.num_indices:
            for index in self.base:
                yield index
                produced += 1
                if produced == self.num_indices:
                    return

    def __len__(self) -> int:
        return self.num_indices


def load_stage_datasets(
    stages: list[StageConfig], train_dataset: Dataset | dict[str, Dataset] | None
) -> list[Dataset]:
    """Each stage's problems: its source, loaded once per source, cut to its length segment (split once)."""
    sources: dict[Any, Dataset] = {}
    segments = SegmentCache()
    result = []
    for index, stage in enumerate(stages):
        where = f"Stage {index + 1} ('{stage.name}')"
        if stage.dataset is None:
            if isinstance(train_dataset, dict):
                if stage.name not in train_dataset:
                    raise ValueError(
                        f"{where} names no dataset and train_dataset has no entry '{stage.name}' "
                        f"(it has {sorted(train_dataset)}). Set the stage's dataset or add that entry."
                    )
                base = train_dataset[stage.name]
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


class CurriculumGRPOTrainer(GRPOTrainer):
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
        callbacks: Extra ``TrainerCallback``\ s; the curriculum, SIGTERM and no-op guard callbacks are added by
            the trainer itself.
        run_callbacks: The run features (``fastcurl.run``): manifests, the stage summary line, Hub pushes. None
            attaches the standard set (``fastcurl.run.standard_run_callbacks``); a list attaches exactly those.
        **kwargs: Passed to ``GRPOTrainer`` (``peft_config``, ...).

    Example::

        from fastcurl import CurriculumGRPOTrainer, FastCuRLConfig, StageConfig
        from fastcurl.rewards import accuracy_reward

        config = FastCuRLConfig(
            output_dir="runs/demo", learning_rate=1e-6, beta=0.001, per_device_train_batch_size=8,
            stages=[
                StageConfig(dataset="data/L2.parquet", segment="L1", max_completion_length=8192,
                            prompts_per_rollout_step=128, prompts_per_update=64, num_generations=8,
                            rollout_steps=160),
                StageConfig(dataset="data/L2.parquet", segment="L2", max_completion_length=16384,
                            prompts_per_rollout_step=64, num_generations=8, rollout_steps=590),
            ],
        )
        trainer = CurriculumGRPOTrainer("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", accuracy_reward, args=config)
        trainer.train()            # trainer.train(resume_from_checkpoint=True) continues a killed run
        trainer.save_final_model()
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
        # The trainer writes its args at every stage boundary (TRL reads batch fields and lengths from there):
        # work on a copy, so the caller's config keeps the values it was given.
        args = copy.copy(args) if args is not None else None
        stages: list[StageConfig] = list(getattr(args, "stages", None) or [])
        self._stage_datasets: list[Dataset] = []
        adjusted: dict[str, Any] = {}
        if stages:
            if kwargs.get("peft_config") is not None or (not isinstance(model, str) and is_peft_model(model)):
                self._check_peft_reference(stages, args)
            with quiet_library_bars(not verbose(args)):
                self._stage_datasets = load_stage_datasets(stages, train_dataset)  # before any model loads
            if processing_class is None and isinstance(model, str):
                processing_class = AutoProcessor.from_pretrained(model, trust_remote_code=args.trust_remote_code)
            self._base_values = {name: getattr(args, name) for name in STAGE_OVERRIDABLE_FIELDS}
            adjusted = self._construction_values(stages, args)
            for name, value in adjusted.items():
                setattr(args, name, value)
            train_dataset = self._stage_datasets[0]
        # With push_to_hub the curriculum pushes stage branches and the final model itself (fastcurl.hub);
        # transformers' own per-checkpoint pushes to main would interleave with them, so they stay off.
        push_stages = bool(getattr(args, "push_to_hub", False)) and bool(stages)
        if push_stages:
            args.push_to_hub = False
        reward_funcs, processing_class = self._apply_think_policy(model, reward_funcs, args, processing_class)
        self.reward_errors: dict[str, int] = {}
        limit = getattr(args, "reward_error_limit", None)
        if limit is not None:
            funcs = reward_funcs if isinstance(reward_funcs, list) else [reward_funcs]
            funcs = [fail_soft_reward(f, limit, self.reward_errors) if callable(f) and not isinstance(f, nn.Module)
                     else f for f in funcs]
            reward_funcs = funcs if isinstance(reward_funcs, list) else funcs[0]
        if eval_dataset is None and getattr(args, "eval_benchmarks", None):
            from .evaluation import load_benchmark

            eval_dataset = {
                Path(name).stem: load_benchmark(name, args.eval_data_dir, args.eval_limit)
                for name in args.eval_benchmarks
            }
        server_mode = bool(getattr(args, "use_vllm", False)) and getattr(args, "vllm_mode", None) == "server"
        if server_mode:
            self._vllm_preflight(model, args, stages)
        sync = getattr(args, "vllm_weight_sync", "nccl") if server_mode else "nccl"
        hook = disk_sync_client(os.path.join(args.output_dir, ".vllm-weights")) if sync == "disk" else nullcontext()
        with hook, quiet_library_bars(not verbose(args)):
            super().__init__(
                model=model,
                reward_funcs=reward_funcs,
                args=args,
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
                processing_class=processing_class,
                callbacks=callbacks,
                **kwargs,
            )
        for name in adjusted:
            setattr(self.args, name, self._base_values[name])
        precision = getattr(self.args, "precision", None)
        if precision is not None and self.is_world_process_zero():
            print(f"[fastcurl] precision: {precision.reason}", flush=True)
        plans = []
        use_stage_progress(self)
        if stages:
            with quiet_library_bars(not verbose(self.args)):
                self._filter_stage_prompts(stages)
            plans = resolve_plan(stages, self._base_values["per_device_train_batch_size"],
                                 self.accelerator.num_processes, self.num_iterations)
        self.curriculum = self.curriculum_class(plans)
        self.add_callback(self.curriculum)
        if stages and self.accelerator.num_processes > 1:
            self._check_ranks_agree(stages)
        if run_callbacks is None:
            run_callbacks = standard_run_callbacks(self.args, push_to_hub=push_stages)
        for callback in run_callbacks:
            self.add_callback(callback)
        self.graceful_stop = GracefulStop()
        self.add_callback(self.graceful_stop)
        self.add_callback(FaultInjectionCallback())
        self.noop_guard = None
        if getattr(self.args, "noop_guard_threshold", None) is not None:
            self.noop_guard = NoLearningGuard(
                lambda: (self.curriculum.current.name if self.curriculum_active else "train", self.max_completion_length),
                threshold=self.args.noop_guard_threshold,
                patience=self.args.noop_guard_patience,
                stop=self.args.noop_guard_stop,
            )
            self.add_callback(self.noop_guard)

    # ----------------------------------------------------------------------------------------------- construction

    def _apply_think_policy(self, model: Any, reward_funcs: Any, args: Any, processing_class: Any) -> tuple[Any, Any]:
        """FastCuRL's accuracy reward graded by the chat template's think policy; the symbolic pool started.

        Decided once, here, from the tokenizer's generation prompt, so training rewards and the validation loop
        grade alike. A plain GRPOConfig (no ``think_policy``) keeps the reward exactly as given.
        """
        from .rewards import accuracy_reward, accuracy_reward_for, default_pool, think_policy_for

        setting = getattr(args, "think_policy", None)
        funcs = reward_funcs if isinstance(reward_funcs, list) else [reward_funcs]
        if setting is None or not any(f is accuracy_reward for f in funcs):
            self.think_policy = None
        else:
            if processing_class is None and isinstance(model, str):
                processing_class = AutoProcessor.from_pretrained(model, trust_remote_code=args.trust_remote_code)
            tokenizer = processing_class if processing_class is not None else None
            self.think_policy = think_policy_for(tokenizer, setting)
            funcs = [accuracy_reward_for(self.think_policy) if f is accuracy_reward else f for f in funcs]
            if os.environ.get("RANK", "0") == "0":
                why = {"required": "only text after </think> is graded; a completion without it scores 0",
                       "auto": "after </think> when the model writes it, else the whole text",
                       "none": "the whole text"}[self.think_policy]
                source = "from the chat template" if setting == "template" else "think_policy"
                print(f"[fastcurl] answers: think policy '{self.think_policy}' ({source}): {why}", flush=True)
        if any(getattr(f, "__module__", "").startswith("fastcurl.rewards") for f in funcs if callable(f)):
            default_pool().start()  # workers import math-verify now, off the first rollout's path
        return (funcs if isinstance(reward_funcs, list) else funcs[0]), processing_class

    @staticmethod
    def _vllm_preflight(model: Any, args: Any, stages: list[StageConfig]) -> None:
        """Before any model loads: the server answers, serves this model and fits the longest stage."""
        if os.environ.get("RANK", "0") != "0":
            return  # only the main process talks to the server
        name = model if isinstance(model, str) else getattr(model.config, "_name_or_path", "")
        longest = max([s.max_completion_length for s in stages] or [args.max_completion_length])
        needed = (args.max_prompt_length or 0) + longest
        base_url = args.vllm_server_base_url or f"http://{args.vllm_server_host}:{args.vllm_server_port}"
        preflight(base_url, name, needed, wait_s=args.vllm_preflight_timeout, host=args.vllm_server_host,
                  port=args.vllm_server_port)

    def _check_ranks_agree(self, stages: list[StageConfig]) -> None:
        """Every rank must run the same schedule on the same data; a mismatch would hang a collective later."""
        import hashlib
        import json

        from accelerate.utils import gather_object

        digest = hashlib.sha256(json.dumps([s.to_dict() for s in stages], sort_keys=True, default=str).encode())
        sizes = []
        for dataset in self._stage_datasets:
            sizes.append(len(dataset))
            for prompt in dataset["prompt"]:
                digest.update(prompt[-1]["content"].encode())
        mine = f"{digest.hexdigest()[:12]} (stage sizes {sizes})"
        everyone = gather_object([mine])
        if len(set(everyone)) > 1:
            listing = "; ".join(f"rank {r}: {v}" for r, v in enumerate(everyone))
            raise ValueError(
                f"The training processes disagree on the curriculum ({listing}). Every rank must load the same "
                f"recipe and the same data: check per-node paths, dataset versions and environment variables."
            )

    @staticmethod
    def _check_peft_reference(stages: list[StageConfig], args: Any) -> None:
        for index, stage in enumerate(stages[1:], start=1):
            beta = stage.overrides.get("beta", args.beta)
            if stage.reset_reference and beta != 0:
                raise ValueError(
                    f"Stage {index + 1} ('{stage.name}') asks for reset_reference with a PEFT adapter, but under "
                    "PEFT the KL reference is the adapter-free base model and cannot become the current policy. "
                    "Set reset_reference: false for the stages after the first, set beta: 0, or train without PEFT."
                )

    @staticmethod
    def _construction_values(stages: list[StageConfig], args: Any) -> dict[str, Any]:
        """Values GRPOTrainer must see at construction so that later stages can use what TRL sets up only then.

        TRL builds no reference model when ``beta == 0`` and enables the entropy bonus only when
        ``entropy_coef != 0``; both are decided once, in ``__init__``.
        """
        values: dict[str, Any] = {}
        for name in ("beta", "entropy_coef"):
            used = [s.overrides.get(name, getattr(args, name)) for s in stages]
            nonzero = [v for v in used if v != 0]
            if getattr(args, name) == 0 and nonzero:
                values[name] = nonzero[0]
        return values

    def _filter_stage_prompts(self, stages: list[StageConfig]) -> None:
        tokenizer = getattr(self.processing_class, "tokenizer", self.processing_class)
        filtered: dict[int, tuple[Dataset, int]] = {}
        for index, stage in enumerate(stages):
            dataset = self._stage_datasets[index]
            if id(dataset) not in filtered:
                filtered[id(dataset)] = filter_by_prompt_length(dataset, tokenizer, self.args.max_prompt_length)
            kept, dropped = filtered[id(dataset)]
            if len(kept) < stage.prompts_per_rollout_step:
                raise ValueError(
                    f"Stage {index + 1} ('{stage.name}') has {len(kept)} prompts after dropping {dropped} longer "
                    f"than max_prompt_length={self.args.max_prompt_length} tokens, fewer than its "
                    f"prompts_per_rollout_step ({stage.prompts_per_rollout_step}). Use more data, a larger "
                    "max_prompt_length or fewer prompts per rollout step."
                )
            self._stage_datasets[index] = kept

    # ------------------------------------------------------------------------------------- applying one stage

    def _set_max_completion_length(self, length: int) -> None:
        """Every copy TRL 1.16 keeps of the completion cap."""
        self.args.max_completion_length = length
        self.max_completion_length = length
        if self.use_vllm:
            self.vllm_generation.max_completion_length = length
        else:
            self.generation_config.max_new_tokens = length
            self.generation_kwargs["max_new_tokens"] = length

    def _apply_setting(self, name: str, value: Any) -> None:
        """Apply one per-stage GRPOConfig field where TRL reads it after construction."""
        setattr(self.args, name, value)
        if name in ("beta", "entropy_coef", "mask_truncated_completions"):
            setattr(self, name, value)
        elif name == "epsilon":
            self.epsilon_low = value
            if self.args.epsilon_high is None:
                self.epsilon_high = value
        elif name == "epsilon_high":
            self.epsilon_high = value if value is not None else self.epsilon_low
        elif name == "scale_rewards":
            self.scale_rewards = {True: "group", False: "none"}.get(value, value)
        elif name in SAMPLING_FIELDS:
            setattr(self, name, value)
            if self.use_vllm:
                setattr(self.vllm_generation, name, value)
            else:
                setattr(self.generation_config, name, value)
                self.generation_kwargs[name] = value
        elif name == "learning_rate":
            if self.optimizer is not None:
                for group in self.optimizer.param_groups:
                    group["lr"] = group["initial_lr"] = value
                if self.lr_scheduler is not None and hasattr(self.lr_scheduler, "base_lrs"):
                    self.lr_scheduler.base_lrs = [value] * len(self.lr_scheduler.base_lrs)
        elif name == "per_device_train_batch_size":
            self._train_batch_size = value

    def _enter_stage(self, index: int, *, resumed_updates: int | None) -> StagePlan:
        """Make stage ``index`` current. ``resumed_updates`` counts its updates already made before a resume."""
        plan = self.curriculum.plans[index]
        stage, batch = plan.config, plan.batch
        self.curriculum.begin_stage(index, self.state.global_step)
        self.args.gradient_accumulation_steps = batch.gradient_accumulation_steps
        self.args.steps_per_generation = batch.steps_per_generation
        self.args.generation_batch_size = batch.generation_batch_size
        self.args.num_generations = self.num_generations = stage.num_generations
        self._set_max_completion_length(stage.max_completion_length)
        for name in STAGE_OVERRIDABLE_FIELDS:
            self._apply_setting(name, stage.overrides.get(name, self._base_values[name]))
        self.train_dataset = self._stage_datasets[index]
        # Completions buffered for the previous stage's batch shape must not leak into this one, and the
        # micro-step counter decides which slice of a generation batch a step trains on.
        self._buffered_inputs = None
        self._step = (resumed_updates or 0) * batch.gradient_accumulation_steps
        if resumed_updates is not None and index > 0 and stage.reset_reference and self.ref_model is not None:
            self._restore_reference(index)
        if resumed_updates is None and index > 0:
            if stage.reset_reference and self.ref_model is not None:
                model = self.accelerator.unwrap_model(self.model_wrapped)
                SyncRefModelCallback.sync_target_model(model, self.ref_model, alpha=1.0)
            if stage.reset_optimizer:
                self._reset_optimizer()
        return plan

    def stage_checkpoint_dir(self, index: int) -> Path:
        return Path(self.args.output_dir) / self.curriculum.plans[index].run_name

    def _restore_reference(self, index: int) -> None:
        """After a resume inside stage ``index``: its reference is the policy saved at the previous stage's end."""
        previous = self.stage_checkpoint_dir(index - 1)
        if not (previous / "config.json").exists():
            raise FileNotFoundError(
                f"Resuming inside stage {index + 1} needs its KL reference, the policy saved at the end of stage "
                f"{index} in {previous}, which is missing. Keep save_stage_checkpoints on, or resume from a "
                "checkpoint of an earlier stage."
            )
        saved = type(self.accelerator.unwrap_model(self.model)).from_pretrained(previous, dtype=self.model.dtype)
        SyncRefModelCallback.sync_target_model(saved, self.ref_model, alpha=1.0)

    def _reset_optimizer(self) -> None:
        """A fresh optimizer state and LR schedule for the stages up to the next reset."""
        self.optimizer.state.clear()
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] = self.args.learning_rate
        self.lr_scheduler = None
        self.create_scheduler(num_training_steps=0, optimizer=self.optimizer)
        self.callback_handler.lr_scheduler = self.lr_scheduler

    def _schedule_horizon(self) -> int:
        """Optimizer updates from the current stage's last optimizer reset up to the next one."""
        plans = self.curriculum.plans
        start = self.curriculum.stage_index
        while start > 0 and not plans[start].config.reset_optimizer:
            start -= 1
        end = start + 1
        while end < len(plans) and not plans[end].config.reset_optimizer:
            end += 1
        return sum(p.batch.optimizer_updates for p in plans[start:end])

    # ------------------------------------------------------------------------ hooks into transformers' loop

    def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
        if self.curriculum_active:
            num_training_steps = self._schedule_horizon()
        return super().create_scheduler(num_training_steps=num_training_steps, optimizer=optimizer)

    @property
    def curriculum_active(self) -> bool:
        return bool(getattr(self, "curriculum", None) and self.curriculum.plans)

    def set_initial_training_values(self, args: Any, dataloader: Any) -> tuple:
        values = super().set_initial_training_values(args, dataloader)
        if not self.curriculum_active:
            return values
        plans = self.curriculum.plans
        first = plans[0].batch
        total_updates = sum(p.batch.optimizer_updates for p in plans)
        num_examples = sum(len(d) for d in self._stage_datasets)
        num_train_samples = sum(p.config.rollout_steps * p.batch.generation_batch_size for p in plans)
        total_train_batch_size = first.per_device_train_batch_size * first.gradient_accumulation_steps * (
            self.accelerator.num_processes
        )
        return TrainingValues(
            num_train_epochs=len(plans),
            num_update_steps_per_epoch=max(first.optimizer_updates, 1),
            num_examples=num_examples,
            num_train_samples=num_train_samples,
            total_train_batch_size=total_train_batch_size,
            steps_in_epoch=first.optimizer_updates * first.gradient_accumulation_steps,
            max_steps=total_updates,
        )

    def _init_training_state(self, max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint, trial):
        epochs_trained, steps_trained = super()._init_training_state(
            max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint, trial
        )
        if not self.curriculum_active:
            return epochs_trained, steps_trained
        saved = self.state.stateful_callbacks.get(type(self.curriculum).__name__) if resume_from_checkpoint else None
        if not saved:
            self.curriculum.stage_index, self.curriculum.stage_start_steps = 0, []
            return 0, 0
        self.curriculum.restore(saved)
        index = self.curriculum.stage_index
        if self.curriculum.stage_over(self.state) and index + 1 < len(self.curriculum.plans):
            return index + 1, 0  # the callback, not a rule re-derived here, says the saved stage is over
        done = self.curriculum.updates_done(self.state)
        return index, done * self.curriculum.plans[index].batch.gradient_accumulation_steps

    def _run_epoch(self, model, epoch, train_dataloader, steps_in_epoch, num_update_steps_per_epoch, trial,
                   ignore_keys_for_eval, start_time, resume_from_checkpoint, epochs_trained,
                   steps_trained_in_current_epoch):
        # Every parameter by name (transformers_hooks checks them): a renamed one fails here instead of making a
        # resume look like a fresh stage.
        passed = dict(trial=trial, ignore_keys_for_eval=ignore_keys_for_eval, start_time=start_time,
                      resume_from_checkpoint=resume_from_checkpoint, epochs_trained=epochs_trained,
                      steps_trained_in_current_epoch=steps_trained_in_current_epoch)
        if not self.curriculum_active:
            return super()._run_epoch(
                model=model,
                epoch=epoch,
                train_dataloader=train_dataloader,
                steps_in_epoch=steps_in_epoch,
                num_update_steps_per_epoch=num_update_steps_per_epoch,
                **passed,
            )
        resuming_here = resume_from_checkpoint is not None and epoch == epochs_trained
        resumed_updates = None
        if resuming_here and len(self.curriculum.stage_start_steps) > epoch:
            resumed_updates = self.state.global_step - self.curriculum.stage_start_steps[epoch]
        if resuming_here and resumed_updates is None and epoch > 0:
            self._complete_interrupted_stage_end(epoch - 1)
        plan = self._enter_stage(epoch, resumed_updates=resumed_updates)
        self._run_event("on_stage_begin", plan=plan, resumed=resumed_updates is not None)
        started = time.monotonic()
        logger.info(
            f"Stage {epoch + 1}/{len(self.curriculum.plans)} '{plan.name}': {plan.config.rollout_steps} rollout steps, "
            f"{plan.batch.optimizer_updates} updates, max_completion_length={plan.config.max_completion_length}, "
            f"num_generations={plan.config.num_generations}, {len(self.train_dataset)} prompts"
        )
        super()._run_epoch(
            model=model,
            epoch=epoch,
            train_dataloader=self.get_train_dataloader(),
            steps_in_epoch=plan.batch.optimizer_updates * plan.batch.gradient_accumulation_steps,
            num_update_steps_per_epoch=plan.batch.optimizer_updates,
            **passed,
        )
        if self.curriculum.stage_over(self.state):  # not when SIGTERM or max_steps stopped the pass
            self._finish_stage(plan, time.monotonic() - started)
            fault_point("after_stage", plan.index + 1)

    def _complete_interrupted_stage_end(self, index: int) -> None:
        """A run killed between a stage's last update and the end of its stage checkpoint: finish that end now.

        The resumed weights are that stage's final policy, so the stage checkpoint (needed to restore the KL
        reference on a later resume) and its manifest record are written from them.
        """
        recorded = {s["index"] for s in read_stage_manifest(self.args.output_dir)}
        checkpoint = self.stage_checkpoint_dir(index)
        if index in recorded and (checkpoint.exists() or not self.args.save_stage_checkpoints):
            return
        logger.warning(f"Stage {index + 1} ended but its stage checkpoint or record is missing; writing it now.")
        self._finish_stage(self.curriculum.plans[index], 0.0)

    def stage_metrics(self, plan: StagePlan) -> dict[str, float]:
        """Means of the stage's logged training metrics over its steps."""
        start = self.curriculum.stage_start_steps[plan.index]
        wanted = {"reward": "mean_reward", "completions/mean_length": "mean_completion_length",
                  "completions/clipped_ratio": "clipped_ratio", "kl": "kl", "entropy": "entropy"}
        sums: dict[str, list[float]] = {}
        for entry in self.state.log_history:
            if start < entry.get("step", -1) <= self.state.global_step and "loss" in entry:
                for key, name in wanted.items():
                    if key in entry:
                        sums.setdefault(name, []).append(float(entry[key]))
        return {name: sum(v) / len(v) for name, v in sums.items()}

    def _finish_stage(self, plan: StagePlan, seconds: float) -> None:
        """Stage end: a checkpoint of the policy, a manifest record and a one-line summary."""
        fault_point("before_stage_end", plan.index + 1)
        checkpoint = self.stage_checkpoint_dir(plan.index)
        if self.args.save_stage_checkpoints:
            self.save_model(str(checkpoint))
        metrics = self.stage_metrics(plan)
        if self.args.eval_on_stage_end and self.eval_dataset is not None:
            def latest() -> list[dict[str, Any]]:
                return [e for e in self.state.log_history if e.get("step") == self.state.global_step]

            if not any(k.startswith("eval/") for e in latest() for k in e):  # eval_steps may have just run
                self.evaluate()
            metrics.update({k: v for e in latest() for k, v in e.items() if k.startswith("eval/")})
        start = self.curriculum.stage_start_steps[plan.index]
        record = {
            "index": plan.index,
            "name": plan.name,
            "run_name": plan.run_name,
            "dataset": plan.config.dataset or "train_dataset",
            "segment": plan.config.segment,
            "dataset_size": len(self._stage_datasets[plan.index]),
            "settings": plan.config.to_dict(),
            "batch": vars(plan.batch),
            "first_global_step": start + 1,
            "last_global_step": self.state.global_step,
            "seconds": round(seconds, 2),
            "metrics": metrics,
            "checkpoint": str(checkpoint) if self.args.save_stage_checkpoints else None,
        }
        self._run_event("on_stage_end", plan=plan, record=record)

    def _run_event(self, event: str, **kwargs: Any) -> None:
        """``on_stage_begin`` / ``on_stage_end`` / ``on_run_end`` to every callback that has it (see ``fastcurl.run``)."""
        for callback in self.callback_handler.callbacks:
            handler = getattr(callback, event, None)
            if handler is not None:
                handler(self, **kwargs)

    @property
    def hub_pusher(self) -> Any:
        """The attached ``HubPushCallback``'s pusher (its results), or None when the run does not push."""
        return next((c.pusher for c in self.callback_handler.callbacks if isinstance(c, HubPushCallback)), None)

    # ------------------------------------------------------------------------------------------ crash safety

    def train(self, *args: Any, **kwargs: Any) -> Any:
        """TRL's train, with SIGTERM turned into "save a checkpoint and stop" for its duration."""
        if self.args.should_save:
            shutil.rmtree(Path(self.args.output_dir) / STAGING_DIR, ignore_errors=True)  # a crash's leftovers
        self.graceful_stop.install()
        try:
            with quiet_library_bars(not verbose(self.args)):
                output = super().train(*args, **kwargs)
        finally:
            self.graceful_stop.uninstall()
        self._run_event("on_run_end")
        return output

    def save_final_model(self, output_dir: str | None = None) -> Path:
        """The final policy in ``output_dir``, loadable with ``from_pretrained(output_dir)``.

        When the last stage's checkpoint already holds exactly this policy (no update since it was written), its
        files are hard-linked instead of written a second time: a finished curriculum keeps one copy on disk.
        """
        out = Path(output_dir or self.args.output_dir)
        source = self._final_stage_checkpoint()
        if source is None:
            self.save_model(str(out))
            return out
        if self.args.should_save:
            out.mkdir(parents=True, exist_ok=True)
            for file in source.iterdir():
                if file.suffix == ".safetensors":  # big, and always written anew (never in place) by safetensors
                    link_or_copy(file, out / file.name)
                elif file.is_file():  # small files a user may rewrite in place: their own copy
                    shutil.copy2(file, out / file.name)
        self.accelerator.wait_for_everyone()
        return out

    def _final_stage_checkpoint(self) -> Path | None:
        if not (self.curriculum_active and self.args.save_stage_checkpoints):
            return None
        last = len(self.curriculum.plans) - 1
        record = next((r for r in read_stage_manifest(self.args.output_dir) if r["index"] == last), None)
        checkpoint = self.stage_checkpoint_dir(last)
        if record is None or record["last_global_step"] != self.state.global_step or not checkpoint.is_dir():
            return None
        return checkpoint

    @property
    def stopped_by_signal(self) -> bool:
        return self.graceful_stop.requested

    def _get_output_dir(self, trial: Any) -> str:
        run_dir = super()._get_output_dir(trial)
        return os.path.join(run_dir, STAGING_DIR) if getattr(self, "_staging", False) else run_dir

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        """transformers' checkpoint, written under ``.staging/`` and renamed into place only when complete.

        A crash or a full disk during the write leaves the previous checkpoint the newest complete one.
        """
        run_dir = Path(super()._get_output_dir(trial))
        name = f"checkpoint-{self.state.global_step}"
        self._staging = True
        try:
            super()._save_checkpoint(model, trial)
        except OSError as error:
            raise OSError(
                error.errno, f"Could not write {name} to {run_dir} ({error}). The previous complete checkpoint "
                f"({find_last_checkpoint(run_dir) or 'none yet'}) is intact: free space and rerun with --resume."
            ) from error
        finally:
            self._staging = False
        fault_point("checkpoint_write", self.state.global_step)
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            staged, final = run_dir / STAGING_DIR / name, run_dir / name
            if final.exists():
                shutil.rmtree(final)
            os.replace(staged, final)
            rotate_checkpoints(output_dir=str(run_dir), save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)
        self.accelerator.wait_for_everyone()

    def training_step(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        try:
            return super().training_step(*args, **kwargs)
        except torch.OutOfMemoryError as error:
            plan = self.curriculum.current if self.curriculum_active else None
            where = f"stage {plan.index + 1} '{plan.name}'" if plan else "training"
            raise torch.OutOfMemoryError(
                f"Out of memory in {where} with max_completion_length={self.max_completion_length}, "
                f"num_generations={self.num_generations}, per_device_train_batch_size="
                f"{self.args.per_device_train_batch_size}, max_prompt_length={self.args.max_prompt_length}. "
                f"Lower per_device_train_batch_size for this stage (it is a per-stage override), enable "
                f"gradient_checkpointing, or generate on a vLLM server. Original error: {error}"
            ) from error

    def _get_train_sampler(self, dataset: Dataset | None = None) -> Sampler:
        sampler = super()._get_train_sampler(dataset)
        if not self.curriculum_active:
            return sampler
        plan = self.curriculum.current
        if plan.index > 0 and getattr(sampler, "generator", None) is not None:
            # Stages that share data (L2 in stages 2 and 4) should not replay the same order.
            sampler.generator.manual_seed(self.args.seed + plan.index)
        indices_per_rollout = plan.batch.generation_batch_size * plan.batch.steps_per_generation * self.num_iterations
        return StageSampler(sampler, plan.config.rollout_steps * indices_per_rollout)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        logs["curriculum/stage"] = float(self.curriculum.stage_index if self.curriculum_active else 0)
        if not self.model.training:
            logs.update(self._validation_metrics(logs))
        elif "loss" in logs:
            logs.update({f"rewards/{name}/errors": float(n) for name, n in self.reward_errors.items()})
            logs.update(self._symbolic_pool_metrics())
        super().log(logs, start_time)

    def _symbolic_pool_metrics(self) -> dict[str, float]:
        """The symbolic pool's counters (checks, timeouts, replaced workers, unavailable), per verifying reward."""
        import sys

        verify = sys.modules.get("fastcurl.rewards.verify")
        pool = getattr(verify, "_POOL", None)
        if pool is None:
            return {}
        names = [getattr(f, "__name__", "") for f in self.reward_funcs if callable(f)]
        names = [n for n in names if "accuracy" in n]
        return {f"rewards/{name}/{key}": float(value) for name in names for key, value in pool.stats.items()}

    def _validation_metrics(self, logs: dict[str, float]) -> dict[str, float]:
        """``eval/<set>/pass@1`` and ``eval/<set>/mean_length`` from TRL's evaluation metrics of one eval set.

        TRL's evaluation loop generates ``num_generations_eval`` completions per problem and scores them with the
        reward functions; the accuracy reward's mean over them is pass@1 averaged over those samples.
        """
        name = next((k[len("eval_"): -len("_runtime")] for k in logs if k.startswith("eval_") and
                     k.endswith("_runtime")), "")
        name = name or "eval"
        metrics = self._metrics["eval"]
        accuracy = next((k for k in metrics if k.startswith("rewards/") and "accuracy" in k and k.endswith("/mean")),
                        "reward")
        out = {}
        for key, label in ((accuracy, "pass@1"), ("completions/mean_length", "mean_length")):
            values = [v for v in metrics.get(key, []) if v == v]
            if values:
                out[f"eval/{name}/{label}"] = sum(values) / len(values)
        return out
