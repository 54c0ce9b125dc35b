"""A DeepSpeed config given as ``deepspeed=`` (a JSON file or dict, as transformers users pass it) trains with the
first stage's batch: its ``"auto"`` fields are filled from the plan, and fields written out that agree with the
plan are accepted. transformers fills them when the config is built, before the plan exists."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

USER_SCRIPT = textwrap.dedent("""
    import json, sys
    from fastcurl import CurriculumGRPOTrainer, FastCuRLConfig, StageConfig
    from fastcurl.rewards import accuracy_reward

    model, ds_file = sys.argv[1], sys.argv[2]
    # 4 prompts x 2 rollouts = 8 completions per update, 2 per device: 4 accumulation steps, 2 updates
    stage = StageConfig(dataset="synthetic", dataset_kwargs={"num_problems": 32}, segment="L1",
                        max_completion_length=8, rollout_steps=2, num_generations=2, prompts_per_rollout_step=4)
    config = FastCuRLConfig(output_dir="out", stages=[stage], per_device_train_batch_size=2, report_to=[],
                            use_cpu=True, bf16=False, deepspeed=ds_file, save_strategy="no", disable_tqdm=True)
    trainer = CurriculumGRPOTrainer(model, accuracy_reward, args=config)
    trainer.train()
    filled = trainer.args.hf_deepspeed_config.config
    print("RESULT", json.dumps({
        "plan_grad_accum": trainer.curriculum.plans[0].batch.gradient_accumulation_steps,
        "ds_grad_accum": filled["gradient_accumulation_steps"],
        "ds_micro_batch": filled["train_micro_batch_size_per_gpu"],
        "ds_train_batch": filled["train_batch_size"],
        "accelerator_grad_accum": trainer.accelerator.gradient_accumulation_steps,
        "engine_grad_accum": trainer.model_wrapped.gradient_accumulation_steps(),
        "engine_steps": trainer.model_wrapped.global_steps,
        "global_step": trainer.state.global_step,
        "caller_grad_accum": config.gradient_accumulation_steps,
    }))
""")


def run_user_script(script: str, model: str, tmp_path: Path, grad_accum: int | str = "auto",
                    ) -> subprocess.CompletedProcess:
    """``script`` run as a user's file with a ZeRO-2 ds.json, one process on the CPU (no launcher)."""
    if importlib.util.find_spec("deepspeed") is None:
        pytest.skip("DeepSpeed is not installed: DS_BUILD_OPS=0 pip install 'fastcurl[deepspeed]'")
    (tmp_path / "train.py").write_text(script)
    (tmp_path / "ds.json").write_text(json.dumps({
        "zero_optimization": {"stage": 2}, "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": grad_accum, "train_batch_size": "auto"}))
    port = str(29500 + (os.getpid() + time.time_ns() // 1000) % 1000)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DS_ACCELERATOR": "cpu", "HF_HUB_OFFLINE": "1",
           "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    return subprocess.run([sys.executable, "train.py", model, "ds.json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("grad_accum", ["auto", 4])
def test_deepspeed_file_trains_with_the_first_stage_batch(grad_accum, tiny_model_path, tmp_path):
    result = run_user_script(USER_SCRIPT, tiny_model_path, tmp_path, grad_accum)
    assert result.returncode == 0, result.stderr[-3000:]
    values = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RESULT"))[7:])
    assert values["plan_grad_accum"] == 4
    assert values["ds_grad_accum"] == values["accelerator_grad_accum"] == values["engine_grad_accum"] == 4
    assert (values["ds_micro_batch"], values["ds_train_batch"]) == (2, 8)
    assert values["global_step"] == values["engine_steps"] == 2  # one DeepSpeed step per optimizer update
    assert values["caller_grad_accum"] == 1  # the caller's config keeps its own value


@pytest.mark.slow
def test_a_deepspeed_batch_field_that_disagrees_with_a_stage_fails_before_the_model_loads(tiny_model_path, tmp_path):
    """DeepSpeed itself would refuse it only when train() starts, and would not check a later stage's at all."""
    result = run_user_script(USER_SCRIPT, "/no/model/loaded/before/the/check", tmp_path, grad_accum=3)
    assert result.returncode != 0
    assert "The DeepSpeed config sets gradient_accumulation_steps: 3, but Stage 1 ('L1-8') trains with 4" \
        in result.stderr, result.stderr[-3000:]
    assert '"gradient_accumulation_steps": "auto"' in result.stderr


def test_deepspeed_from_accelerates_config_is_checked_against_every_stage_too(tmp_path):
    """`accelerate launch` with DeepSpeed in accelerate's own config (its `gradient_accumulation_steps: 1`, as
    `accelerate config` writes it) was not checked: transformers refused stage 1 after the model had loaded."""
    if importlib.util.find_spec("deepspeed") is None:
        pytest.skip("DeepSpeed is not installed: DS_BUILD_OPS=0 pip install 'fastcurl[deepspeed]'")
    script = USER_SCRIPT.replace("deepspeed=ds_file, ", "")
    assert script != USER_SCRIPT
    (tmp_path / "train.py").write_text(script)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DS_ACCELERATOR": "cpu", "HF_HUB_OFFLINE": "1",
           "ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2",
           "ACCELERATE_GRADIENT_ACCUMULATION_STEPS": "1"}
    result = subprocess.run([sys.executable, "train.py", "/no/model/loaded/before/the/check", "unused"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert "The DeepSpeed config sets gradient_accumulation_steps: 1, but Stage 1 ('L1-8') trains with 4" \
        in result.stderr, result.stderr[-3000:]
    assert "Leave it out of the deepspeed_config section of accelerate's config" in result.stderr


TWO_STAGE_SCRIPT = textwrap.dedent("""
    import json, sys
    from transformers import TrainerCallback
    from fastcurl import CurriculumGRPOTrainer, FastCuRLConfig, StageConfig
    from fastcurl.rewards import accuracy_reward

    class Recorder(TrainerCallback):
        seen = []

        def on_step_end(self, args, state, control, model=None, **kwargs):
            self.seen.append((state.global_step, trainer.model_wrapped.gradient_accumulation_steps(),
                              trainer.accelerator.gradient_accumulation_steps, trainer.model_wrapped.global_steps,
                              trainer.model_wrapped.train_micro_batch_size_per_gpu()))

    # 4, then 2 accumulation steps of 2 completions; then a stage's own micro-batch of 1: 4 steps of 1 completion
    stages = [StageConfig(dataset="synthetic", dataset_kwargs={"num_problems": 32}, segment=segment,
                          max_completion_length=8, rollout_steps=1, num_generations=2, prompts_per_rollout_step=p,
                          overrides=overrides)
              for segment, p, overrides in (("L1", 4, {}), ("L3", 2, {}), ("L3", 2, {"per_device_train_batch_size": 1}))]
    config = FastCuRLConfig(output_dir="out", stages=stages, per_device_train_batch_size=2, report_to=[],
                            use_cpu=True, bf16=False, deepspeed=sys.argv[2], save_strategy="no", disable_tqdm=True)
    trainer = CurriculumGRPOTrainer(sys.argv[1], accuracy_reward, args=config, callbacks=[Recorder()])
    trainer.train()
    print("RESULT", json.dumps(Recorder.seen))
""")


@pytest.mark.slow
def test_deepspeed_engine_follows_each_stage_accumulation(tiny_model_path, tmp_path):
    """Stage 2 accumulates over 2 micro-batches, stage 1 over 4: the engine and the accelerator count the same as
    the loop (the engine used to keep stage 1's 4 for the whole run). Stage 3's own micro-batch of 1 reaches the
    engine too (it kept stage 1's 2)."""
    result = run_user_script(TWO_STAGE_SCRIPT, tiny_model_path, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RESULT"))[7:])
    assert seen == [[1, 4, 4, 1, 2], [2, 2, 2, 2, 2], [3, 4, 4, 3, 1]]
