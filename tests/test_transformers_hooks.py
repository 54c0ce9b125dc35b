"""The private transformers hooks the curriculum overrides: checked against the installed version, loudly."""

from __future__ import annotations

import inspect

import pytest
import transformers

from fastcurl.curriculum.transformers_hooks import (
    RELIED_ON_PARAMETERS,
    RELIED_ON_TRL_PARAMETERS,
    TransformersDriftError,
    check_transformers,
    drift,
)


def test_installed_transformers_has_every_relied_on_hook():
    from trl import GRPOTrainer

    assert drift(transformers.Trainer, GRPOTrainer) == []
    check_transformers()


def test_a_renamed_parameter_fails_with_the_hook_name_and_the_fix():
    class RenamedTrainer(transformers.Trainer):
        def _run_epoch(self, model, epoch, train_dataloader, steps_in_epoch, num_update_steps_per_epoch, trial,
                       ignore_keys_for_eval, start_time, resume_from_checkpoint, epochs_done,
                       steps_trained_in_current_epoch):
            pass

    with pytest.raises(TransformersDriftError, match=r"Trainer._run_epoch: expected parameters .*epochs_trained.*found"
                                                     r".*epochs_done.*pip install 'transformers>="):
        check_transformers(RenamedTrainer)


def test_a_reordered_return_tuple_fails():
    class ReorderedTrainer(transformers.Trainer):
        def set_initial_training_values(self, args, dataloader):
            num_train_epochs = num_update_steps_per_epoch = num_examples = num_train_samples = 1
            total_train_batch_size = steps_in_epoch = max_steps = 1
            return (
                max_steps,
                num_train_epochs,
                num_update_steps_per_epoch,
                num_examples,
                num_train_samples,
                total_train_batch_size,
                steps_in_epoch,
            )

    problems = drift(ReorderedTrainer)
    assert len(problems) == 1 and problems[0].startswith("Trainer.set_initial_training_values: expected to return")


def test_a_removed_hook_is_named():
    class Gone(transformers.Trainer):
        pass

    Gone._init_training_state = None  # what a release that drops the method looks like to getattr
    assert any(p.startswith("Trainer._init_training_state: no longer exists") for p in drift(Gone))


def test_the_trainer_overrides_exactly_the_listed_signatures():
    from fastcurl.curriculum.trainer import CurriculumGRPOTrainer

    for name, expected in {**RELIED_ON_PARAMETERS, **RELIED_ON_TRL_PARAMETERS}.items():
        own = getattr(CurriculumGRPOTrainer, name)
        found = tuple(p for p in inspect.signature(own).parameters if p != "self")
        assert found == expected, name


def test_private_hooks_are_overridden_only_in_the_adapter_module():
    """The trainer's own class body defines none of them: a reader finds every private coupling in one place."""
    from fastcurl.curriculum import transformers_hooks
    from fastcurl.curriculum.trainer import CurriculumGRPOTrainer

    private = [n for n in {**RELIED_ON_PARAMETERS, **RELIED_ON_TRL_PARAMETERS} if n.startswith("_")]
    for name in private:
        assert name not in CurriculumGRPOTrainer.__dict__, name
    overridden = [n for n in private if n in transformers_hooks.TransformersLoopHooks.__dict__]
    assert set(overridden) == set(private) - {"_get_output_dir"}  # that one is only called, to find the run dir
    source = inspect.getsource(CurriculumGRPOTrainer)
    for attribute in ("._buffered_inputs", "._step =", "._train_batch_size", "callback_handler.lr_scheduler"):
        assert attribute not in source, attribute


def test_a_reorder_without_parentheses_and_an_extra_returned_value_fail():
    class Unparenthesized(transformers.Trainer):
        def set_initial_training_values(self, args, dataloader):
            num_train_epochs = num_update_steps_per_epoch = num_examples = num_train_samples = 1
            total_train_batch_size = steps_in_epoch = max_steps = 1
            return max_steps, num_train_epochs, num_update_steps_per_epoch, num_examples, num_train_samples, \
                total_train_batch_size, steps_in_epoch

    class ThreeValues(transformers.Trainer):
        def _init_training_state(self, max_steps, num_update_steps_per_epoch, num_train_epochs,
                                 resume_from_checkpoint, trial):
            epochs_trained = steps_trained_in_current_epoch = steps_skipped = 0
            return epochs_trained, steps_trained_in_current_epoch, steps_skipped

    assert [p.split(":")[0] for p in drift(Unparenthesized)] == ["Trainer.set_initial_training_values"]
    problems = drift(ThreeValues)
    assert len(problems) == 1 and problems[0].startswith("Trainer._init_training_state: expected to return")
    with pytest.raises(TransformersDriftError, match="steps_skipped"):
        check_transformers(ThreeValues)


def test_a_missing_trl_attribute_is_named_when_the_trainer_is_built():
    """The curriculum writes TRL's _buffered_inputs and _step and appends to _metrics; a rename in TRL must fail
    loudly, not create new attributes that nothing reads."""
    from types import SimpleNamespace

    from fastcurl.curriculum.transformers_hooks import TransformersDriftError, check_trainer_attributes

    overridden = dict(max_completion_length=8, beta=0.0, entropy_coef=0.0, epsilon_low=0.2, epsilon_high=0.2,
                      scale_rewards="group", mask_truncated_completions=False,
                      use_vllm=False, generation_kwargs={},
                      generation_config=SimpleNamespace(top_p=1.0, top_k=0, min_p=None, repetition_penalty=1.0,
                                                        max_new_tokens=8))
    built = dict(_buffered_inputs=None, _step=0, _metrics={}, _train_batch_size=8,
                 callback_handler=SimpleNamespace(lr_scheduler=None), **overridden)
    check_trainer_attributes(SimpleNamespace(**built))
    # a stage override's target renamed in TRL (epsilon_low), and the vLLM copy of the sampling settings missing
    with pytest.raises(TransformersDriftError, match=r"no longer has: epsilon_low\. "):
        check_trainer_attributes(SimpleNamespace(**{k: v for k, v in built.items() if k != "epsilon_low"}))
    with pytest.raises(TransformersDriftError, match="no longer has: vllm_generation.top_p, vllm_generation.top_k"):
        check_trainer_attributes(SimpleNamespace(**{**built, "use_vllm": True}))
    renamed = SimpleNamespace(top_p=1.0, top_k=0, min_p=None, repetition_penalty=1.0, max_tokens=8)
    with pytest.raises(TransformersDriftError, match=r"no longer has: vllm_generation.max_completion_length\. "):
        check_trainer_attributes(SimpleNamespace(**{**built, "use_vllm": True, "vllm_generation": renamed}))
    with pytest.raises(TransformersDriftError, match="no longer has: _buffered_inputs, _metrics"):
        check_trainer_attributes(SimpleNamespace(**{k: v for k, v in built.items()
                                                    if k not in ("_buffered_inputs", "_metrics")}))
    with pytest.raises(TransformersDriftError,
                       match="no longer has: _train_batch_size, callback_handler.lr_scheduler"):
        check_trainer_attributes(SimpleNamespace(_buffered_inputs=None, _step=0, _metrics={},
                                                 callback_handler=SimpleNamespace(), **overridden))


def test_an_early_return_in_another_order_a_trl_change_and_an_unreadable_source(monkeypatch):
    """Every return statement is checked, not only the last; a change in TRL's GRPOTrainer is blamed on TRL;
    without source, the return order cannot be checked, which is a problem only outside the tested versions."""
    from trl import GRPOTrainer

    from fastcurl.curriculum import transformers_hooks

    class EarlyReturn(transformers.Trainer):
        def _init_training_state(self, max_steps, num_update_steps_per_epoch, num_train_epochs,
                                 resume_from_checkpoint, trial):
            epochs_trained = steps_trained_in_current_epoch = 0
            if resume_from_checkpoint is None:
                return steps_trained_in_current_epoch, epochs_trained
            return epochs_trained, steps_trained_in_current_epoch

    assert [p.split(":")[0] for p in drift(EarlyReturn)] == ["Trainer._init_training_state"]

    class RenamedSampler(GRPOTrainer):
        def _get_train_sampler(self, train_dataset=None):
            pass

    with pytest.raises(TransformersDriftError) as raised:
        check_transformers(grpo_class=RenamedSampler)
    message = str(raised.value)
    assert "TRL's GRPOTrainer changed in trl" in message and "found ('train_dataset',)" in message
    assert "transformers' Trainer changed" not in message and "pip install 'transformers" not in message

    monkeypatch.setattr(transformers_hooks, "_returned_names", lambda function: None)  # e.g. a .pyc-only install
    assert drift(transformers.Trainer, version="5.20.1") == []
    unverified = drift(transformers.Trainer, version="6.0.0")
    assert len(unverified) == 2 and all("source cannot be read" in p for p in unverified)
