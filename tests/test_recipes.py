"""The shipped recipes: they validate, and `fastcurl plan` resolves the preview recipe to the published numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fastcurl.cli import parse_train_args as parse_on_this_machine

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "configs").glob("*.yaml"))
CPU = ["--bf16", "false", "--use_cpu", "true"]


def parse_train_args(argv: list[str]):
    """Every check `fastcurl train` runs on a recipe, less what depends on this machine (vllm installed: the
    GPU recipes use it), as `fastcurl plan` runs them."""
    return parse_on_this_machine(argv, this_machine=False)


def test_recipes_exist():
    names = {p.name for p in RECIPES}
    assert {"fastcurl_1.5b_preview.yaml", "fastcurl_1.5b_v2.yaml", "fastcurl_1.5b_v3.yaml", "deepscaler_1.5b.yaml",
            "quickstart_cpu.yaml"} <= names
    for name in ("ddp.yaml", "zero2.yaml", "zero3.yaml"):
        config = yaml.safe_load((ROOT / "configs" / "accelerate" / name).read_text())
        assert config["num_processes"] >= 1 and config["distributed_type"] in ("MULTI_GPU", "DEEPSPEED")


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_recipe_validates(recipe):
    config, run = parse_train_args(["--config", str(recipe), *CPU])
    assert run.model_name_or_path and config.stages
    for stage in config.stages:
        assert stage.max_completion_length > 0 and stage.rollout_steps > 0


def test_preview_recipe_is_the_published_schedule():
    config, run = parse_train_args(["--config", str(ROOT / "configs" / "fastcurl_1.5b_preview.yaml"), *CPU])
    assert run.model_name_or_path == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
    table = [(s.segment, s.max_completion_length, s.prompts_per_rollout_step, s.num_generations, s.rollout_steps)
             for s in config.stages]
    assert table == [("L1", 8192, 128, 8, 160), ("L2", 16384, 64, 8, 590), ("L3", 24576, 64, 8, 230),
                     ("L2", 16384, 64, 16, 580)]
    assert all((s.prompts_per_update or s.prompts_per_rollout_step) == 64 for s in config.stages)
    assert config.learning_rate == 1e-6 and config.lr_scheduler_type == "constant"
    assert config.beta == 0.001 and config.entropy_coef == 0.001 and config.epsilon == 0.2
    assert config.temperature == 0.6 and config.max_prompt_length == 1024 and config.save_steps == 20
    assert all(s.reset_reference and s.reset_optimizer for s in config.stages)
    assert config.eval_benchmarks == ["aime2024"] and config.eval_strategy == "steps" and config.eval_steps == 20


@pytest.mark.parametrize(("version", "entropy"), [("v2", 1e-6), ("v3", 0.0)])
def test_v2_v3_add_a_fifth_stage_without_kl(version, entropy):
    config, _ = parse_train_args(["--config", str(ROOT / "configs" / f"fastcurl_1.5b_{version}.yaml"), *CPU])
    assert len(config.stages) == 5
    fifth = config.stages[4]
    assert (fifth.segment, fifth.max_completion_length, fifth.num_generations) == ("L2", 16384, 16)
    assert fifth.overrides == {"beta": 0.0, "entropy_coef": entropy}


def test_deepscaler_recipe_steps():
    config, _ = parse_train_args(["--config", str(ROOT / "configs" / "deepscaler_1.5b.yaml"), *CPU])
    ends, total = [], 0
    for stage in config.stages:
        total += stage.rollout_steps
        ends.append(total)
        assert stage.prompts_per_rollout_step == 128 and stage.segment is None
    assert ends[:2] == [1040, 1520] and 1700 <= ends[2] <= 1800
    assert [s.num_generations for s in config.stages] == [8, 16, 16]


def test_plan_prints_the_published_numbers_from_the_real_data(shared_data, tmp_path):
    out = tmp_path / "plan.json"
    result = subprocess.run(
        [sys.executable, "-m", "fastcurl.cli", "plan", str(ROOT / "configs" / "fastcurl_1.5b_preview.yaml"),
         "--dataset", str(shared_data / "train" / "train_L2.parquet"), "--num_processes", "4", "--json", str(out)],
        capture_output=True, text=True, timeout=180, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert [r["dataset_size"] for r in rows] == [24976, 40315, 15339, 40315]
    assert [r["optimizer_updates"] for r in rows] == [320, 590, 230, 580]
    assert [r["gradient_accumulation_steps"] for r in rows] == [32, 32, 32, 64]
    assert rows[0]["max_generated_tokens"] == 160 * 128 * 8 * 8192
    assert rows[0]["epochs"] == pytest.approx(160 * 128 / 24976)
    assert "total: 1,560 rollout steps, 1,720 optimizer updates" in result.stdout


def test_plan_resolves_the_quickstart_and_reports_unreachable_data(tmp_path):
    quick = subprocess.run(
        [sys.executable, "-m", "fastcurl.cli", "plan", str(ROOT / "configs" / "quickstart_cpu.yaml")],
        capture_output=True, text=True, timeout=180,
    )
    assert quick.returncode == 0, quick.stderr[-2000:]
    assert "L1-64" in quick.stdout and "L3-128" in quick.stdout and "synthetic [L1]" in quick.stdout
    offline = subprocess.run(
        [sys.executable, "-m", "fastcurl.cli", "plan", str(ROOT / "configs" / "deepscaler_1.5b.yaml")],
        capture_output=True, text=True, timeout=180, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert offline.returncode == 0
    assert "data sizes unknown" in offline.stderr and "Hub is unreachable" in offline.stderr
    assert "1,750 rollout steps" in offline.stdout


def test_adaptive_recipe_is_the_preview_with_rules():
    preview, _ = parse_train_args(["--config", str(ROOT / "configs" / "fastcurl_1.5b_preview.yaml"), *CPU])
    config, _ = parse_train_args(["--config", str(ROOT / "configs" / "fastcurl_1.5b_adaptive.yaml"), *CPU])
    assert [s.segment for s in config.stages] == [s.segment for s in preview.stages]
    assert [s.max_completion_length for s in config.stages] == [s.max_completion_length for s in preview.stages]
    assert [s.advance_when is not None for s in config.stages] == [True, True, True, False]
    assert all(0 < s.min_rollout_steps < s.rollout_steps for s in config.stages[:3])
    assert (config.learning_rate, config.beta, config.temperature) == (preview.learning_rate, preview.beta,
                                                                       preview.temperature)


def test_the_cpu_ddp_launcher_config_starts_two_ranks(tmp_path):
    """configs/accelerate/cpu_ddp.yaml as its comment says to use it: two ranks, not one."""
    import os
    import subprocess
    import sys

    probe = tmp_path / "probe.py"
    # one write per line: print() with several arguments writes them apart, and two ranks share the pipe
    probe.write_text('import os, sys\nsys.stdout.write(f"rank {os.environ.get(\'RANK\')} of '
                     '{os.environ.get(\'WORLD_SIZE\')}\\n")\n')
    shown = subprocess.run([sys.executable, "-m", "fastcurl.cli", "launch", "--config_file",
                            str(ROOT / "configs" / "accelerate" / "cpu_ddp.yaml"), "--main_process_port", "29613",
                            str(probe)], capture_output=True, text=True, timeout=180,
                           env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert sorted(line for line in shown.stdout.splitlines() if line.startswith("rank")) == ["rank 0 of 2",
                                                                                          "rank 1 of 2"]
