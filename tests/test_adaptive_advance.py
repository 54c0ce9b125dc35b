"""Adaptive stage advance (issue 16, item 1): a stage ends when its recipe's rule holds, never before its minimum,
at its maximum otherwise; the same update after a SIGKILL and resume; the rule is checked before anything loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cli_runs import kill_during_update, start_train

from fastcurl import CurriculumGRPOTrainer, FastCuRLConfig, StageConfig
from fastcurl.curriculum.advance import rule_holds

ROOT = Path(__file__).resolve().parents[1]
STAGE = {"dataset": "synthetic", "dataset_kwargs": {"num_problems": 48}, "num_generations": 4,
         "prompts_per_rollout_step": 2}
CLIPPED = "completions/clipped_ratio"  # ~1.0 with the tiny random model and these caps


def varied(completions, **kwargs):
    return [float(i % 2) for i in range(len(completions))]


def run(tiny_model_path, tmp_path, rule, min_rollout_steps=3, rollout_steps=6):
    stages = [StageConfig(name="short", segment="L1", max_completion_length=8, rollout_steps=rollout_steps,
                          min_rollout_steps=min_rollout_steps, advance_when=rule, **STAGE),
              StageConfig(name="long", segment="L3", max_completion_length=16, rollout_steps=2, **STAGE)]
    args = FastCuRLConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", logging_steps=1,
                          save_strategy="no", per_device_train_batch_size=8, seed=0, stages=stages,
                          disable_tqdm=True)
    trainer = CurriculumGRPOTrainer(model=tiny_model_path, reward_funcs=varied, args=args)
    trainer.train()
    manifest = json.loads((tmp_path / "stage_manifest.json").read_text())["stages"]
    return trainer, manifest


def test_a_stage_advances_when_its_rule_holds_but_not_before_its_minimum(tiny_model_path, tmp_path):
    # A decision reads the logs of the updates before it: with window 1 the rule can hold at update 2, so the
    # minimum of 4 is what keeps the stage (without it this run advances after update 2 and the test fails).
    trainer, manifest = run(tiny_model_path, tmp_path, {"any": [{"metric": CLIPPED, "above": 0.5, "window": 1}]},
                            min_rollout_steps=4)
    clipped = [e[CLIPPED] for e in trainer.state.log_history if CLIPPED in e]
    assert min(clipped[:3]) > 0.5  # the rule held from the first log on
    assert [(s["first_global_step"], s["last_global_step"]) for s in manifest] == [(1, 4), (5, 6)]
    assert manifest[0]["ended_by"].startswith("advance_when after 4 updates: completions/clipped_ratio mean")
    assert manifest[1]["ended_by"] == "rollout_steps maximum (2)"
    assert trainer.curriculum.stage_start_steps == [0, 4]


def test_a_stage_whose_rule_never_holds_runs_to_its_maximum(tiny_model_path, tmp_path):
    rule = {"all": [{"metric": CLIPPED, "below": 0.01, "window": 1}, {"metric": "reward", "above": 0.0}]}
    trainer, manifest = run(tiny_model_path, tmp_path, rule, min_rollout_steps=1)
    assert [(s["first_global_step"], s["last_global_step"]) for s in manifest] == [(1, 6), (7, 8)]
    assert manifest[0]["ended_by"] == "rollout_steps maximum (6)"


def test_rules_read_the_window_and_plateau():
    history = [{"reward": r} for r in (0.1, 0.2, 0.3, 0.31, 0.31, 0.32)]
    assert rule_holds({"metric": "reward", "plateau": 0.05, "window": 2}, history)[0]  # 0.315 vs 0.305
    assert not rule_holds({"metric": "reward", "plateau": 0.05, "window": 3}, history)[0]  # 0.313 vs 0.2
    assert not rule_holds({"metric": "reward", "plateau": 0.05, "window": 4}, history)[0]  # needs 8 values
    assert rule_holds([{"metric": "reward", "above": 0.3, "window": 3}], history)[0]
    assert not rule_holds({"all": [{"metric": "reward", "above": 0.3}, {"metric": "kl", "above": 0}]}, history)[0]


@pytest.mark.parametrize(("rule", "message"), [
    ({"any": [{"metric": "completions/clip_ratio", "above": 0.3}]}, "metric 'completions/clip_ratio', which the "
                                                                   "trainer does not log"),
    ({"any": [{"metric": "reward", "above": 0.3, "below": 0.9}]}, "exactly one of above, below, plateau"),
    ({"any": [{"metric": "reward", "plateau": "small"}]}, "plateau: must be a number"),
    ({"sometimes": []}, "advance_when must be {any: [conditions]}"),
    ({"any": [{"metric": "reward", "above": 0.3, "window": 0}]}, "window must be a positive integer"),
    # valid names the run would never log: the stage could silently never end early
    ({"any": [{"metric": "kl", "below": 0.1}]}, "kl (TRL logs it only when beta is not 0)"),
    ({"any": [{"metric": "dynamic_sampling/kept_share", "below": 0.1}]}, "only on a stage with dynamic_sampling"),
])
def test_a_bad_rule_fails_before_anything_loads(tmp_path, rule, message):
    with pytest.raises(ValueError, match=None) as error:
        FastCuRLConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", beta=0.0, stages=[
            StageConfig(name="s", dataset="synthetic", rollout_steps=4, advance_when=rule)])
    assert message in str(error.value) and "Stage 1 ('s')" in str(error.value)


def test_a_rule_on_a_reward_the_run_does_not_have_fails_before_the_model_loads(tmp_path):
    rule = {"any": [{"metric": "rewards/acuracy_reward/mean", "above": 0.5}]}
    args = FastCuRLConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", stages=[
        StageConfig(name="s", dataset="synthetic", rollout_steps=4, advance_when=rule)])
    with pytest.raises(ValueError, match="rewards/acuracy_reward/mean \\(this run's reward functions are varied\\)"):
        CurriculumGRPOTrainer(model=str(tmp_path / "no-model-here"), reward_funcs=varied, args=args,
                              processing_class=object())


def test_plan_shows_the_minimum_the_maximum_and_the_rule(tmp_path):
    recipe = {"per_device_train_batch_size": 8, "stages": [
        {**STAGE, "name": "short", "max_completion_length": 8, "rollout_steps": 300, "min_rollout_steps": 40,
         "advance_when": {"any": [{"metric": CLIPPED, "above": 0.3, "window": 10},
                                  {"metric": "reward", "plateau": 0.01, "window": 20}]}}]}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    shown = subprocess.run([sys.executable, "-m", "fastcurl.cli", "plan", str(path)], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert shown.returncode == 0, shown.stderr
    assert ("adaptive: 40 to 300 rollout steps, advances when completions/clipped_ratio above 0.3 (window 10) or "
            "reward plateau 0.01 (window 20)") in shown.stdout
    assert "generated tokens <=" in shown.stdout


def recipe(model_path: str) -> dict:
    rule = {"any": [{"metric": CLIPPED, "above": 0.5, "window": 2}]}
    return {"model_name_or_path": model_path, "reward_funcs": ["recording_reward:recorded_reward"], "use_cpu": True,
            "report_to": "none", "logging_steps": 1, "save_strategy": "steps", "save_steps": 1,
            "per_device_train_batch_size": 4, "learning_rate": 1e-3, "lr_scheduler_type": "constant", "seed": 0,
            "beta": 0.05, "disable_tqdm": True,
            "stages": [{**STAGE, "name": "short", "segment": "L1", "max_completion_length": 8, "rollout_steps": 8,
                        "min_rollout_steps": 3, "advance_when": rule},
                       {**STAGE, "name": "long", "segment": "L3", "max_completion_length": 16, "rollout_steps": 2}]}


def start(tmp_path: Path, model: str, out: Path, record: Path, *extra: str) -> subprocess.Popen:
    return start_train(recipe(model), tmp_path, out, record, *extra)


def final_weights(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(out / "model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("killed_in_update", [3, 4])
def test_a_killed_adaptive_run_advances_at_the_same_update_after_resume(tiny_model_path, tmp_path,
                                                                        killed_in_update):
    """SIGKILL (from this test) during update 3 (the rule's decision not taken yet) or 4 (taken and saved, the
    next stage not begun in the checkpoint): the resumed run advances at update 3 like the uninterrupted one and
    ends with its weights."""
    whole = start(tmp_path, tiny_model_path, tmp_path / "whole", tmp_path / "whole.jsonl")
    assert whole.wait(timeout=300) == 0, whole.communicate()[1][-3000:]
    out, record = tmp_path / "run", tmp_path / "run.jsonl"
    kill_during_update(start(tmp_path, tiny_model_path, out, record), record, killed_in_update)
    resumed = start(tmp_path, tiny_model_path, out, record, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.communicate()[1][-3000:]
    expected = json.loads((tmp_path / "whole" / "stage_manifest.json").read_text())["stages"]
    got = json.loads((out / "stage_manifest.json").read_text())["stages"]
    steps = [(s["first_global_step"], s["last_global_step"], s["ended_by"]) for s in got]
    assert steps == [(s["first_global_step"], s["last_global_step"], s["ended_by"]) for s in expected]
    assert steps[0][:2] == (1, 3)
    a, b = final_weights(tmp_path / "whole"), final_weights(out)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
