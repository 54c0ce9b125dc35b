"""The schedule as data: derived batch fields and every validation error, before any model loads."""

from __future__ import annotations

import pytest

from fastcurl import FastCuRLConfig, StageConfig, derive_stage_batch

PREVIEW = [  # FastCuRL-1.5B-Preview: prompts per rollout step, per update, rollouts, rollout steps
    (128, 64, 8, 160),
    (64, 64, 8, 590),
    (64, 64, 8, 230),
    (64, 64, 16, 580),
]


def config(tmp_path, stages, **kwargs):
    return FastCuRLConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", stages=stages, **kwargs)


@pytest.mark.parametrize("num_processes", [1, 2])
def test_derived_batch_matches_the_papers_terms(num_processes):
    updates = []
    for per_rollout, per_update, rollouts, steps in PREVIEW:
        stage = StageConfig(prompts_per_rollout_step=per_rollout, prompts_per_update=per_update,
                            num_generations=rollouts, rollout_steps=steps, max_completion_length=8192, name="s")
        batch = derive_stage_batch(stage, per_device_train_batch_size=8, num_processes=num_processes)
        assert batch.per_device_train_batch_size * batch.gradient_accumulation_steps * num_processes == (
            per_update * rollouts
        )
        assert batch.per_device_train_batch_size * batch.steps_per_generation * num_processes == (
            per_rollout * rollouts
        )
        assert batch.generation_batch_size == per_rollout * rollouts
        assert batch.updates_per_rollout_step == per_rollout // per_update
        updates.append(batch.optimizer_updates)
    assert updates == [320, 590, 230, 580]
    first = derive_stage_batch(
        StageConfig(prompts_per_rollout_step=128, prompts_per_update=64, num_generations=8, rollout_steps=160),
        8, num_processes,
    )
    assert (first.gradient_accumulation_steps, first.steps_per_generation) == (64 // num_processes, 128 // num_processes)


def test_first_stage_sets_trl_fields(tmp_path):
    c = config(tmp_path, [{"max_completion_length": 64, "num_generations": 4, "prompts_per_rollout_step": 4,
                           "prompts_per_update": 2, "rollout_steps": 3, "segment": "L1"}], per_device_train_batch_size=4)
    # The stage's name, like its TRL fields, is resolved in its plan (and the trainer's copy of the config) ...
    from fastcurl.curriculum.config import first_stage_values
    from fastcurl.curriculum.plan import resolve_plan

    plan = resolve_plan(c.stages, c.per_device_train_batch_size, 1, c.num_iterations)[0]
    assert isinstance(c.stages[0], StageConfig) and plan.name == "L1-64" and plan.run_name == "stage-1-L1-64"
    first = first_stage_values(plan)
    assert (first["num_generations"], first["max_completion_length"]) == (4, 64)
    assert (first["gradient_accumulation_steps"], first["steps_per_generation"], first["generation_batch_size"]) == (
        2, 4, 16)
    batch = resolve_plan(c.stages, c.per_device_train_batch_size, 1)[0].batch
    assert (batch.gradient_accumulation_steps, batch.steps_per_generation, batch.generation_batch_size) == (2, 4, 16)
    assert c.to_dict()["stages"][0]["max_completion_length"] == 64
    # ... while the config keeps the fields as the user gave them, the stage's unset name included.
    assert c.stages[0].name is None
    defaults = FastCuRLConfig(output_dir=str(tmp_path), use_cpu=True)
    assert (c.num_generations, c.max_completion_length, c.per_device_train_batch_size) == (
        defaults.num_generations, defaults.max_completion_length, 4)
    assert (c.gradient_accumulation_steps, c.steps_per_generation, c.generation_batch_size) == (1, None, None)  # unset


def test_yaml_style_overrides_at_top_level(tmp_path):
    c = config(tmp_path, [{"rollout_steps": 1, "beta": 0.0, "entropy_coef": 1e-6}])
    assert c.stages[0].overrides == {"beta": 0.0, "entropy_coef": 1e-6}


@pytest.mark.parametrize(
    ("stages", "kwargs", "message"),
    [
        ([{"rollout_steps": 1, "colour": "red"}], {}, r"stages\[0\]: unknown field 'colour'"),
        ([{"rollout_steps": 1, "temperature": 1.0}], {},
         r"Stage 1 \('stage1-256'\): 'temperature' cannot change between stages: TRL folds the temperature"),
        ([{"rollout_steps": 1, "overrides": {"loss_type": "grpo"}}], {}, r"'loss_type' cannot change between stages"),
        ([{"rollout_steps": 1, "overrides": {"output_dir": "x"}}], {},
         r"'output_dir' cannot change between stages. Fields a stage may override: beta"),
        ([{"rollout_steps": 0}], {}, r"Stage 1 \('stage1-256'\): rollout_steps must be a positive integer, got 0"),
        ([{"rollout_steps": 1, "num_generations": 1}], {}, r"num_generations must be at least 2"),
        ([{"rollout_steps": 1, "prompts_per_rollout_step": 6, "prompts_per_update": 4}], {},
         r"prompts_per_update \(4\) must divide prompts_per_rollout_step \(6\)"),
        ([{"rollout_steps": 1, "segment": "L4"}], {}, r"segment must be one of L1, L2, L3"),
        ([{"rollout_steps": 1, "name": "a"}, {"rollout_steps": 1, "name": "a"}], {},
         r"Stage names must be unique; repeated: a"),
        ([{"rollout_steps": 1, "prompts_per_rollout_step": 3, "num_generations": 2}],
         {"per_device_train_batch_size": 4},
         r"Stage 1 \('stage1-256'\): 3 prompts x 2 rollouts = 6 completions per update do not split evenly into 1 "
         r"process\(es\) x 4 per device"),
        ([{"rollout_steps": 1}], {"max_steps": 10}, r"max_steps is set together with stages"),
        (["L1"], {}, r"stages\[0\] must be a mapping"),
    ],
)
def test_validation_errors(tmp_path, stages, kwargs, message):
    with pytest.raises(ValueError, match=message):
        config(tmp_path, stages, **kwargs)


def test_a_stage_is_frozen_all_the_way_down():
    import copy
    import dataclasses
    import json
    import pickle

    stage = StageConfig.from_dict({"rollout_steps": 2, "dataset": "synthetic", "dataset_kwargs": {"num_problems": 8},
                                   "beta": 0.01, "advance_when": {"any": [{"metric": "reward", "above": 0.5}]}})
    for change in (lambda: stage.overrides.update(beta=0.0), lambda: stage.dataset_kwargs.pop("num_problems"),
                   lambda: stage.advance_when["any"].append({"metric": "reward", "below": 0.1}),
                   lambda: stage.advance_when["any"][0].__setitem__("above", 0.9)):
        with pytest.raises(TypeError, match="dataclasses.replace"):
            change()
    assert stage.overrides == {"beta": 0.01} and stage.advance_when["any"][0]["above"] == 0.5
    for copied in (copy.deepcopy(stage), pickle.loads(pickle.dumps(stage))):
        assert copied == stage
        with pytest.raises(TypeError):
            copied.overrides["beta"] = 1.0
    plain = stage.to_dict()  # plain values: a caller may edit them, and they serialise as before
    plain["overrides"]["beta"] = 0.5
    plain["advance_when"]["any"].append({})
    assert type(plain["overrides"]) is dict and type(plain["advance_when"]["any"]) is list
    assert json.loads(json.dumps(stage.to_dict())) == stage.to_dict()
    changed = dataclasses.replace(stage, overrides={**stage.overrides, "beta": 0.0})
    assert changed.overrides == {"beta": 0.0} and stage.overrides == {"beta": 0.01}
