"""The silent no-op guard fires on a stage whose cap is far too short and stays quiet on a healthy one."""

from __future__ import annotations

from fastcurl import CurriculumGRPOTrainer, FastCuRLConfig, StageConfig
from fastcurl.rewards import accuracy_reward
from fastcurl.run import NoLearningGuard


def _run(tiny_model_path, tmp_path, reward, max_completion_length, stop=False):
    stages = [StageConfig(name="capped", dataset="synthetic", dataset_kwargs={"num_problems": 32},
                          max_completion_length=max_completion_length, num_generations=4,
                          prompts_per_rollout_step=2, rollout_steps=6)]
    args = FastCuRLConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", logging_steps=1,
                          save_strategy="no", per_device_train_batch_size=8, seed=0, stages=stages,
                          disable_tqdm=True, noop_guard_patience=3, noop_guard_stop=stop,
                          save_stage_checkpoints=False)
    trainer = CurriculumGRPOTrainer(model=tiny_model_path, reward_funcs=reward, args=args)
    trainer.train()
    return trainer


def test_guard_fires_on_a_cap_that_truncates_everything(tiny_model_path, tmp_path, capsys):
    trainer = _run(tiny_model_path, tmp_path, accuracy_reward, max_completion_length=2)
    assert len(trainer.run_callback(NoLearningGuard).warnings) == 1
    message = trainer.run_callback(NoLearningGuard).warnings[0]
    assert "stage 'capped'" in message and "max_completion_length=2" in message
    assert "probably learning nothing" in capsys.readouterr().out
    assert trainer.state.global_step == 6  # warns, does not stop by default


def test_guard_can_stop_the_run(tiny_model_path, tmp_path):
    trainer = _run(tiny_model_path, tmp_path, accuracy_reward, max_completion_length=2, stop=True)
    assert trainer.state.global_step == 3


def test_guard_stays_quiet_when_groups_differ(tiny_model_path, tmp_path):
    def varied(completions, **kwargs):  # rewards differ inside each group, as in a run that learns
        return [float(i % 2) for i in range(len(completions))]

    trainer = _run(tiny_model_path, tmp_path, varied, max_completion_length=2)
    assert trainer.run_callback(NoLearningGuard).warnings == []


def test_guard_names_the_cause_of_flat_groups():
    """Clipping, a reward that is always 0 without clipping, and groups that all score the same non-zero reward."""
    from transformers import TrainerControl, TrainerState

    from fastcurl.curriculum.plan import resolve_plan
    from fastcurl.run.guard import NoLearningGuard

    plan = resolve_plan([StageConfig(name="L1-8k", max_completion_length=8192, rollout_steps=1)], 8, 1)[0]

    def fire(logs):
        guard = NoLearningGuard(patience=2)
        guard.on_stage_begin(None, plan, resumed=False)
        for _ in range(2):
            guard.on_log(None, TrainerState(), TrainerControl(), logs=dict(logs))
        assert len(guard.warnings) == 1, guard.warnings
        return guard.warnings[0]

    capped = fire({"frac_reward_zero_std": 1.0, "completions/clipped_ratio": 1.0, "reward": 0.0})
    assert "100% of completions hit max_completion_length=8192" in capped and "Raise" in capped
    zero = fire({"frac_reward_zero_std": 1.0, "completions/clipped_ratio": 0.0, "reward": 0.0})
    assert "every reward is 0" in zero and "ground truths" in zero
    same = fire({"frac_reward_zero_std": 0.95, "completions/clipped_ratio": 1.0, "reward": 0.95})
    assert "same reward (mean reward 0.95" in same and "too easy" in same
    quiet = NoLearningGuard(patience=2)
    quiet.on_stage_begin(None, plan, resumed=False)
    for flat in (1.0, 0.5, 1.0):  # a streak broken by a step with varied groups
        quiet.on_log(None, TrainerState(), TrainerControl(), logs={"frac_reward_zero_std": flat})
    assert quiet.warnings == []


def test_guard_names_empty_golds_in_a_real_run_whose_completions_finish(tiny_model_path, sample_data, tmp_path,
                                                                        capsys):
    """Row 10: the real L1 sample with every ground truth emptied, the real reward, completions that end before the
    cap (this model copy stops at most tokens). Every group is flat without clipping, and the guard says that the
    golds or the reward are the cause, not the length cap."""
    import json
    import shutil

    import pyarrow.parquet as pq

    model = tmp_path / "model"
    shutil.copytree(tiny_model_path, model)
    generation = json.loads((model / "generation_config.json").read_text())
    generation["eos_token_id"] = list(range(3, 320))  # every ordinary token ends a completion (TRL counts it as EOS)
    (model / "generation_config.json").write_text(json.dumps(generation))
    table = pq.read_table(sample_data / "train" / "train_L1.parquet").slice(0, 32).to_pylist()
    for row in table:
        row["reward_model"] = {**row["reward_model"], "ground_truth": ""}
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(table), tmp_path / "empty_golds.parquet")
    stages = [StageConfig(name="golds", dataset=str(tmp_path / "empty_golds.parquet"), max_completion_length=16,
                          num_generations=4, prompts_per_rollout_step=2, rollout_steps=4)]
    args = FastCuRLConfig(output_dir=str(tmp_path / "run"), use_cpu=True, report_to="none", logging_steps=1,
                          save_strategy="no", per_device_train_batch_size=8, seed=0, stages=stages,
                          disable_tqdm=True, noop_guard_patience=3, save_stage_checkpoints=False)
    trainer = CurriculumGRPOTrainer(model=str(model), reward_funcs=accuracy_reward, args=args)
    trainer.train()
    clipped = [entry["completions/clipped_ratio"] for entry in trainer.state.log_history
               if "completions/clipped_ratio" in entry]
    assert clipped and max(clipped) < 0.5  # the cap is not the cause here
    [message] = trainer.run_callback(NoLearningGuard).warnings
    assert "stage 'golds'" in message and "every reward is 0 although only" in message
    assert "ground truths are non-empty" in message
    assert "probably learning nothing" in capsys.readouterr().out
