"""Validation during training: TRL's evaluation loop on configured benchmarks, every eval_steps and at stage ends."""

from __future__ import annotations

import json

from fastcurl import CurriculumGRPOTrainer, FastCuRLConfig, StageConfig
from fastcurl.rewards import accuracy_reward


def test_validation_every_eval_steps_and_at_stage_ends(tiny_model_path, sample_data, tmp_path):
    stages = [
        StageConfig(name="short", dataset="synthetic", dataset_kwargs={"num_problems": 32}, segment="L1",
                    max_completion_length=8, num_generations=4, prompts_per_rollout_step=2, rollout_steps=3),
        StageConfig(name="long", dataset="synthetic", dataset_kwargs={"num_problems": 32}, segment="L3",
                    max_completion_length=16, num_generations=4, prompts_per_rollout_step=2, rollout_steps=2),
    ]
    args = FastCuRLConfig(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", logging_steps=1, save_strategy="no",
        per_device_train_batch_size=8, seed=0, stages=stages, disable_tqdm=True,
        eval_strategy="steps", eval_steps=2, per_device_eval_batch_size=4, num_generations_eval=2,
        eval_benchmarks=["aime2024", "amc2023"], eval_data_dir=str(sample_data / "test"), eval_limit=2,
    )
    trainer = CurriculumGRPOTrainer(model=tiny_model_path, reward_funcs=accuracy_reward, args=args)
    assert set(trainer.eval_dataset) == {"aime2024", "amc2023"} and len(trainer.eval_dataset["aime2024"]) == 2
    trainer.train()
    evals = [e for e in trainer.state.log_history if "eval/aime2024/pass@1" in e]
    steps = [e["step"] for e in evals]
    # every 2 updates (2, 4) and at the end of each stage (3, 5)
    assert steps == [2, 3, 4, 5], steps
    assert [e["curriculum/stage"] for e in evals] == [0.0, 0.0, 1.0, 1.0]
    for entry in evals:
        assert 0.0 <= entry["eval/aime2024/pass@1"] <= 1.0
        assert 0 < entry["eval/aime2024/mean_length"] <= 16
    long_stage = [e for e in evals if e["step"] == 5][0]
    assert long_stage["eval/aime2024/mean_length"] <= 16
    assert any("eval/amc2023/pass@1" in e for e in trainer.state.log_history)
    manifest = json.loads((tmp_path / "stage_manifest.json").read_text())
    assert all("eval/aime2024/pass@1" in s["metrics"] for s in manifest["stages"])
