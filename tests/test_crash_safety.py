"""Kill anywhere, resume exactly; SIGTERM; failure modes with clear messages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from fastcurl import CurriculumGRPOTrainer, FastCuRLConfig, StageConfig
from fastcurl.safety import RewardErrorLimit, find_last_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def recipe(model_path: str) -> dict:
    stage = {"dataset": "synthetic", "dataset_kwargs": {"num_problems": 48}, "num_generations": 4,
             "prompts_per_rollout_step": 2}
    return {
        "model_name_or_path": model_path, "reward_funcs": ["recording_reward:recorded_reward"], "use_cpu": True,
        "report_to": "none", "logging_steps": 1, "save_strategy": "steps", "save_steps": 1,
        "per_device_train_batch_size": 4, "learning_rate": 1e-3, "lr_scheduler_type": "constant", "seed": 0,
        "beta": 0.05, "disable_tqdm": True,
        "stages": [{**stage, "name": "short", "segment": "L1", "max_completion_length": 8, "rollout_steps": 2},
                   {**stage, "name": "long", "segment": "L3", "max_completion_length": 16, "rollout_steps": 3}],
    }


def cli(tmp_path: Path, model_path: str, out: Path, record: Path, *extra: str, env: dict | None = None):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe(model_path)))
    environment = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{TESTS}",
                   "FASTCURL_TEST_RECORD": str(record), **(env or {})}
    return subprocess.run([sys.executable, "-m", "fastcurl.cli", "train", "--config", str(path), "--output_dir",
                           str(out), *extra], capture_output=True, text=True, env=environment, timeout=300)


def records(path: Path) -> dict[int, dict]:
    by_step = {}
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        by_step[entry["step"]] = entry  # a step redone after a resume keeps its last record
    return by_step


def weights(path: Path) -> dict[str, torch.Tensor]:
    return AutoModelForCausalLM.from_pretrained(path).state_dict()


@pytest.fixture(scope="module")
def uninterrupted(tiny_model_path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("full")
    result = cli(tmp, tiny_model_path, tmp / "run", tmp / "record.jsonl")
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "run", records(tmp / "record.jsonl")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "resumes_from"),
    [("mid_step:4", 3), ("checkpoint_write:3", 2), ("before_stage_end:1", 2), ("after_stage:1", 2)],
)
def test_killed_run_resumes_exactly(tiny_model_path, tmp_path, uninterrupted, fault, resumes_from):
    full_dir, full = uninterrupted
    out, record = tmp_path / "run", tmp_path / "record.jsonl"
    killed = cli(tmp_path, tiny_model_path, out, record, env={"FASTCURL_FAULT": fault})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert find_last_checkpoint(out).name == f"checkpoint-{resumes_from}"
    record.unlink()
    resumed = cli(tmp_path, tiny_model_path, out, record, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {out / f'checkpoint-{resumes_from}'}" in resumed.stdout
    again = records(record)
    assert sorted(again) == list(range(resumes_from + 1, 6))
    for step, entry in again.items():  # same prompts, same completion lengths (caps), same scores
        assert entry == full[step], step
    manifest = json.loads((out / "stage_manifest.json").read_text())["stages"]
    assert [(s["first_global_step"], s["last_global_step"]) for s in manifest] == [(1, 2), (3, 5)]
    assert (out / "stage-1-short").is_dir() and (out / "stage-2-long").is_dir()
    final, reference = weights(out), weights(full_dir)
    for name, tensor in reference.items():
        assert torch.equal(final[name], tensor), name


def test_sigterm_saves_a_checkpoint_and_stops_cleanly(tiny_model_path, tmp_path, uninterrupted):
    full_dir, _ = uninterrupted
    out, record = tmp_path / "run", tmp_path / "record.jsonl"
    stopped = cli(tmp_path, tiny_model_path, out, record, env={"FASTCURL_TEST_SIGTERM_AT": "3"})
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert "stopped by SIGTERM at update 3" in stopped.stdout
    assert find_last_checkpoint(out).name == "checkpoint-3"
    assert not (out / "model.safetensors").exists()  # not mistaken for a finished run
    resumed = cli(tmp_path, tiny_model_path, out, record, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final, reference = weights(out), weights(full_dir)
    assert all(torch.equal(final[n], t) for n, t in reference.items())


def test_incomplete_checkpoints_are_ignored(tmp_path):
    for step, state in ((1, "{}"), (2, "{}"), (3, '{"trunc')):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-4").mkdir()  # no trainer state at all
    (tmp_path / ".staging" / "checkpoint-5").mkdir(parents=True)
    assert find_last_checkpoint(tmp_path).name == "checkpoint-2"


def small_trainer(tiny_model_path, tmp_path, reward, **kwargs) -> CurriculumGRPOTrainer:
    stages = [StageConfig(name="only", dataset="synthetic", dataset_kwargs={"num_problems": 32},
                          max_completion_length=8, num_generations=4, prompts_per_rollout_step=2, rollout_steps=3)]
    args = FastCuRLConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", logging_steps=1,
                          per_device_train_batch_size=8, seed=0, stages=stages, disable_tqdm=True,
                          **{"save_strategy": "no", **kwargs})
    return CurriculumGRPOTrainer(model=tiny_model_path, reward_funcs=reward, args=args)


def poisoned(completions, ground_truth, **kwargs):
    if any(int(g[0]) % 3 == 0 for g in ground_truth):
        raise ValueError("poison: this reward cannot score a multiple of three")
    return [1.0] * len(completions)


def test_reward_that_raises_scores_zero_and_is_counted(tiny_model_path, tmp_path):
    trainer = small_trainer(tiny_model_path, tmp_path, poisoned, reward_error_limit=1000)
    trainer.train()
    errors = [e["rewards/poisoned/errors"] for e in trainer.state.log_history if "rewards/poisoned/errors" in e]
    assert len(errors) == 3 and errors[-1] > 0 and errors == sorted(errors)


def test_reward_error_limit_stops_with_the_traceback(tiny_model_path, tmp_path):
    trainer = small_trainer(tiny_model_path, tmp_path, poisoned, reward_error_limit=0)
    with pytest.raises(RewardErrorLimit, match=r"(?s)'poisoned' raised 1 times.*ValueError: poison"):
        trainer.train()


def test_full_disk_keeps_the_previous_checkpoint(tiny_model_path, tmp_path, monkeypatch):
    trainer = small_trainer(tiny_model_path, tmp_path, poisoned, reward_error_limit=1000, save_strategy="steps",
                            save_steps=1)
    original = trainer._save_rng_state

    def full_disk(output_dir):
        if trainer.state.global_step == 2:
            raise OSError(28, "No space left on device")
        return original(output_dir)

    monkeypatch.setattr(trainer, "_save_rng_state", full_disk)
    with pytest.raises(OSError, match=r"Could not write checkpoint-2 .*checkpoint-1\) is intact.*--resume"):
        trainer.train()
    assert find_last_checkpoint(tmp_path).name == "checkpoint-1"
    assert not (tmp_path / "checkpoint-2").exists()


def test_out_of_memory_names_the_stage_and_its_lengths(tiny_model_path, tmp_path, monkeypatch):
    trainer = small_trainer(tiny_model_path, tmp_path, poisoned, reward_error_limit=1000)

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(trainer.model, "generate", no_memory)
    with pytest.raises(torch.OutOfMemoryError, match=r"stage 1 'only' with max_completion_length=8, "
                                                     r"num_generations=4.*Tried to allocate"):
        trainer.train()
