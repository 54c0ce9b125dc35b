"""The silent no-op guard fires on a stage whose cap is far too short and stays quiet on a healthy one."""

from __future__ import annotations

from fastcurl import CurriculumGRPOTrainer, FastCuRLConfig, StageConfig
from fastcurl.rewards import accuracy_reward


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
    assert len(trainer.noop_guard.warnings) == 1
    message = trainer.noop_guard.warnings[0]
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
    assert trainer.noop_guard.warnings == []
