"""Solved-prompt filtering between stages (issue 16, item 3): a `drop_solved` stage leaves out what every rollout
answered right before it; the manifest counts them; a SIGKILLed and resumed run drops the same prompts."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli_runs import kill_during_update, start_train

from fastcurl import FastCuRLConfig, StageConfig
from fastcurl.run.checkpoints import COMPLETE_MARKER


def recipe(model_path: str, prompts_per_update: int | None = None) -> dict:
    stage = {"dataset": "synthetic", "dataset_kwargs": {"num_problems": 24}, "num_generations": 4,
             "prompts_per_rollout_step": 4, "prompts_per_update": prompts_per_update, "segment": "L2",
             "max_completion_length": 8}
    return {"model_name_or_path": model_path, "reward_funcs": ["recording_reward:solving_reward"], "use_cpu": True,
            "report_to": "none", "logging_steps": 1, "save_strategy": "steps", "save_steps": 1,
            "per_device_train_batch_size": 4, "learning_rate": 1e-3, "lr_scheduler_type": "constant", "seed": 0,
            "beta": 0.05, "disable_tqdm": True,
            "stages": [{**stage, "name": "first", "rollout_steps": 4},
                       {**stage, "name": "second", "rollout_steps": 4, "drop_solved": True}]}


def start(tmp_path: Path, model: str, out: Path, record: Path, *extra: str, **recipe_kwargs) -> subprocess.Popen:
    return start_train(recipe(model, **recipe_kwargs), tmp_path, out, record, *extra)


def final_counts(out: Path) -> dict:
    last = max(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    state = json.loads((last / "trainer_state.json").read_text())
    return state["stateful_callbacks"]["SolvedPrompts"]["attributes"]["counts"]


def calls(record: Path) -> dict[int, list[str]]:
    by_step: dict[int, list[str]] = {}
    for line in record.read_text().splitlines():
        entry = json.loads(line)
        by_step[entry["step"]] = entry["prompts"]  # a step redone after a resume keeps its last call
    return by_step


@pytest.mark.slow
def test_solved_prompts_leave_the_next_stage_and_a_resume_drops_the_same(tiny_model_path, tmp_path):
    whole, whole_record = tmp_path / "whole", tmp_path / "whole.jsonl"
    process = start(tmp_path, tiny_model_path, whole, whole_record)
    assert process.wait(timeout=300) == 0, process.communicate()[1][-3000:]
    drawn = calls(whole_record)
    first = {p for step in (1, 2, 3, 4) for p in drawn[step]}
    solved = {p for p in first if len(p) % 2 == 0}  # every rollout of these scored 1 in stage 1
    second = {p for step in (5, 6, 7, 8) for p in drawn[step]}
    assert solved and second and not (second & solved)
    manifest = json.loads((whole / "stage_manifest.json").read_text())["stages"]
    assert manifest[0]["dropped_solved"] is None and manifest[1]["dropped_solved"] == len(solved)

    out, record = tmp_path / "run", tmp_path / "run.jsonl"
    kill_during_update(start(tmp_path, tiny_model_path, out, record), record, 6)  # stage 2's second update
    resumed = start(tmp_path, tiny_model_path, out, record, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.communicate()[1][-3000:]
    assert calls(record) == drawn  # the same prompts at every update, the dropped ones never drawn again
    assert json.loads((out / "stage_manifest.json").read_text())["stages"][1]["dropped_solved"] == len(solved)


def test_drop_solved_on_the_first_stage_is_refused(tmp_path):
    with pytest.raises(ValueError, match="the first stage has none"):
        FastCuRLConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", stages=[
            StageConfig(name="s", dataset="synthetic", rollout_steps=4, drop_solved=True)])


@pytest.mark.slow
def test_a_resume_between_two_updates_of_one_rollout_step_counts_its_rollouts_once(tiny_model_path, tmp_path):
    """Two updates per rollout step: a kill during the second resumes from the first, and TRL generates the step
    again. Its rollouts were counted at the first update; counting the regenerated ones too would double them."""
    whole, whole_record = tmp_path / "whole", tmp_path / "whole.jsonl"
    process = start(tmp_path, tiny_model_path, whole, whole_record, prompts_per_update=2)
    assert process.wait(timeout=300) == 0, process.communicate()[1][-3000:]
    out, record = tmp_path / "run", tmp_path / "run.jsonl"
    process = start(tmp_path, tiny_model_path, out, record, prompts_per_update=2)
    deadline = time.monotonic() + 240
    while not (out / "checkpoint-3" / COMPLETE_MARKER).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)  # during update 4, the second of rollout step 2 (or just after it)
    process.wait(timeout=60)
    for later in out.glob("checkpoint-*"):  # a kill that fell after checkpoint-4: resume from 3 all the same
        if int(later.name.split("-")[1]) > 3:
            shutil.rmtree(later)
    resumed = start(tmp_path, tiny_model_path, out, record, "--resume", prompts_per_update=2)
    assert resumed.wait(timeout=300) == 0, resumed.communicate()[1][-3000:]
    counts = final_counts(out)
    assert counts == final_counts(whole) and sum(total for _, total in counts["0"].values()) == 4 * 4 * 4
