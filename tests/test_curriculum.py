"""The curriculum core against the real GRPOTrainer on a tiny model."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from datasets import Dataset
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from fastcurl import CurriculumGRPOTrainer, FastCuRLConfig, StageConfig
from fastcurl.curriculum import CurriculumCallback
from fastcurl.data import make_synthetic_math


def length_reward(completions, **kwargs):
    return [len(c[0]["content"] if isinstance(c, list) else c) / 50.0 for c in completions]


class Recorder:
    """A reward function that records each call's prompts and the trainer's stage at that moment."""

    __name__ = "recorder"

    def __init__(self):
        self.trainer = None
        self.calls = []

    def __call__(self, prompts, completions, **kwargs):
        stage = self.trainer.curriculum.stage_index if self.trainer is not None else None
        self.calls.append((stage, [p[-1]["content"] for p in prompts]))
        return length_reward(completions)


def small_config(tmp_path, **kwargs):
    base = dict(
        output_dir=str(tmp_path),
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        seed=0,
        use_cpu=True,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        disable_tqdm=True,
    )
    base.update(kwargs)
    return base


def two_stages(**overrides):
    return [
        StageConfig(
            name="short", dataset="synthetic", dataset_kwargs={"num_problems": 64}, segment="L1", rollout_steps=2,
            max_completion_length=8, num_generations=4, prompts_per_rollout_step=4, prompts_per_update=2,
        ),
        StageConfig(
            name="long", dataset="synthetic", dataset_kwargs={"num_problems": 64}, segment="L3", rollout_steps=2,
            max_completion_length=24, num_generations=4, prompts_per_rollout_step=2, overrides=overrides,
        ),
    ]


def test_drop_in_matches_grpo_trainer(tiny_model_path, tmp_path):
    dataset = make_synthetic_math(32, seed=3)
    results = []
    for trainer_cls in (GRPOTrainer, CurriculumGRPOTrainer):
        seen = []

        def reward(prompts, completions, **kwargs):
            seen.append([c[0]["content"] for c in completions])
            return length_reward(completions)

        args = GRPOConfig(
            **small_config(tmp_path / trainer_cls.__name__, max_steps=3, beta=0.01),
            num_generations=4, max_completion_length=12,
        )
        trainer = trainer_cls(model=tiny_model_path, reward_funcs=reward, args=args, train_dataset=dataset)
        trainer.train()
        params = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
        results.append((seen, trainer.state.log_history, params))
    (seen_a, logs_a, params_a), (seen_b, logs_b, params_b) = results
    assert seen_a == seen_b and len(seen_a) == 3
    assert len(logs_a) == len(logs_b)
    for entry_a, entry_b in zip(logs_a, logs_b):
        assert set(entry_b) - set(entry_a) == {"curriculum/stage"}
        assert entry_b["curriculum/stage"] == 0.0
        for key, value in entry_a.items():
            if key.endswith(("runtime", "per_second", "step_time")):
                continue
            assert entry_b[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    for name, value in params_a.items():
        assert torch.allclose(value, params_b[name]), name


class StageProbe(TrainerCallback):
    """Captures trainer state at the first step of each stage (before its first optimizer step)."""

    def __init__(self):
        self.trainer = None
        self.seen = {}

    def on_step_begin(self, args, state, control, **kwargs):
        t = self.trainer
        index = t.curriculum.stage_index
        if index in self.seen:
            return
        model = t.accelerator.unwrap_model(t.model)
        ref_equal = None
        if t.ref_model is not None:
            ref_equal = all(
                torch.equal(a, b) for a, b in zip(model.parameters(), t.ref_model.parameters(), strict=True)
            )
        self.seen[index] = {
            "global_step": state.global_step,
            "ref_equals_policy": ref_equal,
            "optimizer_state_entries": len(t.optimizer.state),
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "steps_per_generation": args.steps_per_generation,
            "generation_batch_size": args.generation_batch_size,
            "num_generations": t.num_generations,
            "max_completion_length": t.max_completion_length,
            "max_new_tokens": t.generation_config.max_new_tokens,
            "generation_kwargs_max_new_tokens": t.generation_kwargs["max_new_tokens"],
            "train_dataset": t.train_dataset,
        }


def run_two_stages(tiny_model_path, tmp_path, *, stage2_overrides=None, probe=None, **config):
    recorder = Recorder()
    args = FastCuRLConfig(**small_config(tmp_path, **config), stages=two_stages(**(stage2_overrides or {})))
    trainer = CurriculumGRPOTrainer(
        model=tiny_model_path, reward_funcs=[recorder], args=args, callbacks=[probe] if probe else None
    )
    recorder.trainer = trainer
    if probe:
        probe.trainer = trainer
    trainer.train()
    return trainer, recorder


def test_stage_switch(tiny_model_path, tmp_path):
    probe = StageProbe()
    trainer, recorder = run_two_stages(tiny_model_path, tmp_path, probe=probe, beta=0.05)
    logs = [h for h in trainer.state.log_history if "loss" in h]
    # stage 1: 2 rollout steps x 2 updates; stage 2: 2 rollout steps x 1 update
    assert [h["step"] for h in logs] == [1, 2, 3, 4, 5, 6]
    assert [h["curriculum/stage"] for h in logs] == [0, 0, 0, 0, 1, 1]
    assert trainer.state.global_step == 6

    lengths = {h["step"]: h["completions/max_length"] for h in logs if "completions/max_length" in h}
    assert all(lengths[s] <= 8 for s in (1, 3))
    assert all(8 < lengths[s] <= 24 for s in (5, 6))

    stage_prompts = [set(p[-1]["content"] for p in d["prompt"]) for d in trainer.stage_datasets]
    assert not stage_prompts[0] & stage_prompts[1]
    assert recorder.calls and {stage for stage, _ in recorder.calls} == {0, 1}
    for stage, prompts in recorder.calls:
        assert set(prompts) <= stage_prompts[stage]

    kl = {h["step"]: h["kl"] for h in logs}
    assert kl[4] > 0  # the policy moved away from the reference during stage 1
    assert kl[5] == 0.0  # stage 2's reference is the policy it starts from
    assert probe.seen[1]["ref_equals_policy"] is True
    assert probe.seen[0]["ref_equals_policy"] is True
    assert probe.seen[1]["optimizer_state_entries"] == 0  # fresh optimizer
    assert probe.seen[1]["global_step"] == 4

    first, second = probe.seen[0], probe.seen[1]
    assert (first["gradient_accumulation_steps"], first["steps_per_generation"], first["generation_batch_size"]) == (
        2, 4, 16,
    )
    assert (second["gradient_accumulation_steps"], second["steps_per_generation"]) == (2, 2)
    assert second["generation_batch_size"] == 8
    for key in ("max_completion_length", "max_new_tokens", "generation_kwargs_max_new_tokens"):
        assert (first[key], second[key]) == (8, 24)
    assert second["train_dataset"] is trainer.stage_datasets[1]


def test_stage_keeps_optimizer_and_reference_when_asked(tiny_model_path, tmp_path):
    probe = StageProbe()
    recorder = Recorder()
    stages = two_stages()
    stages[1] = dataclasses.replace(stages[1], reset_optimizer=False, reset_reference=False)  # stages are frozen
    args = FastCuRLConfig(**small_config(tmp_path, beta=0.05), stages=stages)
    trainer = CurriculumGRPOTrainer(model=tiny_model_path, reward_funcs=[recorder], args=args, callbacks=[probe])
    probe.trainer = recorder.trainer = trainer
    trainer.train()
    assert probe.seen[1]["optimizer_state_entries"] > 0
    assert probe.seen[1]["ref_equals_policy"] is False
    kl = {h["step"]: h["kl"] for h in trainer.state.log_history if "kl" in h}
    assert kl[5] > 0


def test_stage_runs_several_passes_over_small_data(tiny_model_path, tmp_path):
    recorder = Recorder()
    stage = StageConfig(
        name="only", rollout_steps=5, max_completion_length=6, num_generations=2, prompts_per_rollout_step=4
    )
    dataset = make_synthetic_math(8, seed=5)
    args = FastCuRLConfig(**small_config(tmp_path), stages=[stage])
    trainer = CurriculumGRPOTrainer(model=tiny_model_path, reward_funcs=[recorder], args=args, train_dataset=dataset)
    recorder.trainer = trainer
    trainer.train()
    assert trainer.state.global_step == 5
    assert len(recorder.calls) == 5
    for _, prompts in recorder.calls:
        assert len(prompts) == 8 and len(set(prompts)) == 4  # 4 distinct prompts, each num_generations times


def test_curriculum_rejects_too_little_data(tiny_model_path, tmp_path):
    stage = StageConfig(rollout_steps=1, max_completion_length=6, num_generations=2, prompts_per_rollout_step=16)
    args = FastCuRLConfig(**small_config(tmp_path), stages=[stage])
    with pytest.raises(ValueError, match=r"Stage 1 .* has 8 prompts .* fewer than its prompts_per_rollout_step \(16\)"):
        CurriculumGRPOTrainer(
            model=tiny_model_path, reward_funcs=[length_reward], args=args, train_dataset=make_synthetic_math(8)
        )


def test_prompt_length_filter_drops_long_prompts(tiny_model_path, tmp_path):
    stage = StageConfig(rollout_steps=1, max_completion_length=6, num_generations=2, prompts_per_rollout_step=2)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    dataset = make_synthetic_math(40, seed=2)

    def n_tokens(prompt):
        return len(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)["input_ids"])

    lengths = sorted(n_tokens(p) for p in dataset["prompt"])
    limit = lengths[len(lengths) // 2]
    args = FastCuRLConfig(**small_config(tmp_path), stages=[stage], max_prompt_length=limit)
    trainer = CurriculumGRPOTrainer(
        model=tiny_model_path, reward_funcs=[length_reward], args=args, train_dataset=dataset
    )
    kept = trainer.stage_datasets[0]
    assert len(kept) == sum(n <= limit for n in lengths) < len(dataset)
    assert all(n_tokens(p) <= limit for p in kept["prompt"])


def test_lora_refuses_reference_reset_before_loading(tmp_path):
    from peft import LoraConfig

    args = FastCuRLConfig(**small_config(tmp_path, beta=0.01), stages=two_stages())
    with pytest.raises(ValueError, match=r"Stage 2 \('long'\) asks for reset_reference with a PEFT adapter"):
        CurriculumGRPOTrainer(
            model="/nonexistent/model-never-loaded", reward_funcs=[length_reward], args=args,
            peft_config=LoraConfig(r=4, target_modules=["q_proj"]),
        )


class EndFirstStageEarly(CurriculumCallback):
    """Advances on its own condition: stage 1 ends after 2 of its 4 updates."""

    def should_advance(self, state):
        return super().should_advance(state) or (self.stage_index == 0 and self.updates_done(state) >= 2)


class EarlyTrainer(CurriculumGRPOTrainer):
    curriculum_class = EndFirstStageEarly


def test_resume_asks_the_callback_whether_its_stage_is_over(tiny_model_path, tmp_path):
    """A checkpoint taken at the update where the subclass ended stage 1 resumes in stage 2, as the run did."""

    def run(resume=None, trainer_class=EarlyTrainer, **extra):
        recorder = Recorder()
        args = FastCuRLConfig(**small_config(tmp_path, save_strategy="steps", save_steps=2, **extra),
                              stages=two_stages())
        trainer = trainer_class(model=tiny_model_path, reward_funcs=[recorder], args=args)
        recorder.trainer = trainer
        trainer.train(resume_from_checkpoint=resume)
        return trainer, recorder

    trainer, recorder = run()
    assert trainer.curriculum.stage_start_steps == [0, 2]  # ended early, at the callback's word
    assert trainer.state.global_step == 4  # 2 updates of stage 1, then stage 2's 2
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["curriculum/stage"] for h in logs] == [0, 0, 1, 1]

    resumed, resumed_recorder = run(resume=str(tmp_path / "checkpoint-2"))
    assert resumed.curriculum.stage_start_steps == [0, 2]
    assert resumed.state.global_step == 4
    assert {stage for stage, _ in resumed_recorder.calls} == {1}  # no update of stage 1 after the resume

    # transformers' own restore of saved callbacks (for the user's stateful ones) leaves the curriculum's to it
    resumed, resumed_recorder = run(resume=str(tmp_path / "checkpoint-2"), restore_callback_states_from_checkpoint=True)
    assert resumed.curriculum.stage_start_steps == [0, 2] and resumed.state.global_step == 4
    assert {stage for stage, _ in resumed_recorder.calls} == {1}
    attached = [c for c in resumed.callback_handler.callbacks if isinstance(c, CurriculumCallback)]
    assert attached == [resumed.curriculum]
    ended_by = json.loads((tmp_path / "stage_manifest.json").read_text())["stages"][0]["ended_by"]
    assert ended_by == "EndFirstStageEarly.should_advance after 2 of 4 updates"

    # Resumed by a class other than the one that saved the state (`fastcurl train --resume` after a notebook run):
    # the saved state is found and its decision followed; it used to restart stage 1, then fail to save.
    resumed, resumed_recorder = run(resume=str(tmp_path / "checkpoint-2"), trainer_class=CurriculumGRPOTrainer)
    assert resumed.curriculum.stage_start_steps == [0, 2] and resumed.state.global_step == 4
    assert {stage for stage, _ in resumed_recorder.calls} == {1}
    saved = json.loads((tmp_path / "checkpoint-4" / "trainer_state.json").read_text())["stateful_callbacks"]
    assert saved["CurriculumCallback"]["attributes"]["stage_start_steps"] == [0, 2]


class EndLastStageEarly(CurriculumCallback):
    """Ends the last stage after 1 of its 2 updates: there is no next stage to move to."""

    def should_advance(self, state):
        return super().should_advance(state) or (self.stage_index == 1 and self.updates_done(state) >= 1)


class EndLastEarlyTrainer(CurriculumGRPOTrainer):
    curriculum_class = EndLastStageEarly


def test_resuming_a_run_whose_last_stage_the_callback_ended_early_trains_nothing(tiny_model_path, tmp_path):
    """The review found a resume from the final checkpoint trained one more update of the last stage: the
    callback's decision was read, but the stage's pass ran to its maximum."""

    def run(resume=None):
        recorder = Recorder()
        args = FastCuRLConfig(**small_config(tmp_path, save_strategy="steps", save_steps=1), stages=two_stages())
        trainer = EndLastEarlyTrainer(model=tiny_model_path, reward_funcs=[recorder], args=args)
        recorder.trainer = trainer
        trainer.train(resume_from_checkpoint=resume)
        return trainer, recorder

    trainer, _ = run()
    final = trainer.state.global_step
    assert trainer.curriculum.stage_start_steps == [0, final - 1]  # 1 update of the last stage
    resumed, recorder = run(resume=str(tmp_path / f"checkpoint-{final}"))
    assert resumed.state.global_step == final and recorder.calls == []
    assert not (tmp_path / f"checkpoint-{final + 1}").exists()
    resumed, recorder = run(resume=str(tmp_path / f"checkpoint-{final - 1}"))  # the last stage's one update again
    assert resumed.state.global_step == final and {stage for stage, _ in recorder.calls} == {1}


def test_overlong_penalty_and_dr_grpo_normaliser_follow_the_stage_length(tiny_model_path, tmp_path):
    """Issue 16, item 4: the soft overlong penalty's bound is the current stage's cap (8, then 16), and the
    dr_grpo loss divides by the current stage's length after the switch (TRL binds both once when built)."""
    import inspect
    import json
    import shutil

    from trl import GRPOTrainer

    from fastcurl.rewards import StageOverlongPenalty

    assert "self.max_completion_length" in inspect.getsource(GRPOTrainer._compute_loss)  # dr_grpo's normaliser
    model = tmp_path / "model"
    shutil.copytree(tiny_model_path, model)
    generation = json.loads((model / "generation_config.json").read_text())
    generation["eos_token_id"] = list(range(3, 33))  # about one token in ten ends a completion: lengths vary
    (model / "generation_config.json").write_text(json.dumps(generation))
    penalty = StageOverlongPenalty(buffer_fraction=0.5)
    scored, normalisers = [], []

    def recorder(completion_ids, **kwargs):
        scored.append((penalty.max_completion_length, [len(ids) for ids in completion_ids],
                       penalty(completion_ids)))
        return [float(i % 2) for i in range(len(completion_ids))]

    class Recording(CurriculumGRPOTrainer):
        def _compute_loss(self, model, inputs):
            normalisers.append(self.max_completion_length)
            return super()._compute_loss(model, inputs)

    stage = {"dataset": "synthetic", "dataset_kwargs": {"num_problems": 48}, "num_generations": 4,
             "prompts_per_rollout_step": 2, "rollout_steps": 2}
    args = FastCuRLConfig(output_dir=str(tmp_path / "run"), use_cpu=True, report_to="none", save_strategy="no",
                          per_device_train_batch_size=8, seed=0, disable_tqdm=True, loss_type="dr_grpo",
                          save_stage_checkpoints=False,
                          stages=[StageConfig(name="short", segment="L1", max_completion_length=8, **stage),
                                  StageConfig(name="long", segment="L3", max_completion_length=16, **stage)])
    trainer = Recording(model=str(model), reward_funcs=[penalty, recorder], args=args)
    trainer.train()
    assert [bound for bound, _, _ in scored] == [8, 8, 16, 16]
    assert normalisers == [8, 8, 16, 16]
    for bound, lengths, scores in scored:  # DAPO eq. 13 with L_max = the stage's cap, L_cache = half of it
        free = bound // 2
        assert scores == [0.0 if n <= free else (free - n) / free for n in lengths]
    # completions longer than stage 1's cap but inside stage 2's: a bound fixed at 8 (TRL's) would score them -1
    between = [s for bound, lengths, scores in scored if bound == 16 for n, s in zip(lengths, scores) if 8 < n < 16]
    assert between and all(-1.0 < s < 0.0 for s in between)


def test_overlong_penalty_by_name_and_unbound():
    import pytest

    from fastcurl.cli import load_reward
    from fastcurl.rewards import StageOverlongPenalty, stage_overlong_penalty

    assert load_reward("overlong") is stage_overlong_penalty
    with pytest.raises(RuntimeError, match="CurriculumGRPOTrainer"):
        StageOverlongPenalty()([[1, 2]])
    assert StageOverlongPenalty(0.2, 100)([[1] * 80, [1] * 90, [1] * 100, [1] * 101]) == [0.0, -0.5, -1.0, -1.0]


def test_the_recipe_digest_ignores_the_process_count_and_accepts_older_checkpoints():
    """A checkpoint resumes on another number of processes (the per-device batch fields are not the recipe); one
    saved before that change (every batch field hashed) still resumes on its own process count; a changed stage
    is still refused."""
    from fastcurl.curriculum.plan import resolve_plan
    from fastcurl.errors import RunInputError

    stages = [StageConfig(segment="L1", max_completion_length=8, prompts_per_rollout_step=8, rollout_steps=2,
                          num_generations=4)]
    on = {n: CurriculumCallback(resolve_plan(stages, 4, n)) for n in (1, 2, 4)}
    assert len({c.recipe_digest for c in on.values()}) == 1
    on[2].check_recipe(on[4].recipe_digest)
    on[2].check_recipe(on[2]._digest(per_process_fields=True))  # an older checkpoint, same process count
    changed = CurriculumCallback(resolve_plan([dataclasses.replace(stages[0], rollout_steps=3)], 4, 2))
    with pytest.raises(RunInputError, match="trained under another recipe"):
        changed.check_recipe(on[2].recipe_digest)
