"""The first hour: precision chosen by the hardware, help that helps, a quiet console, one copy of the final model."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from fastcurl.generation import precision
from fastcurl.curriculum.config import FastCuRLConfig

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
# oneDNN and ATen capped at AVX2: bfloat16 matmuls fall back to emulation, as on an AVX2-only CPU.
AVX2_ONLY = {**ENV, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def fake_probe(slowdown: float) -> precision.CpuBf16Probe:
    return precision.CpuBf16Probe(capability="AVX2", flags=(), float32_seconds=0.001,
                                  bfloat16_seconds=0.001 * slowdown)


@pytest.fixture
def probe_says(monkeypatch):
    def set_slowdown(slowdown: float) -> None:
        monkeypatch.setattr(precision, "probe_cpu_bf16", lambda: fake_probe(slowdown))

    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    return set_slowdown


def test_automatic_precision_is_float32_when_the_probe_says_bf16_is_slow(probe_says, tmp_path):
    probe_says(67.0)
    config = FastCuRLConfig(output_dir=str(tmp_path), use_cpu=True)
    assert config.bf16 is False
    assert "float32" in config.precision.reason and "67.0x" in config.precision.reason
    assert precision.resolve_dtype("auto", use_cpu=True) == "float32"


def test_automatic_precision_is_bf16_where_the_cpu_runs_it_natively(probe_says, tmp_path):
    probe_says(0.6)
    config = FastCuRLConfig(output_dir=str(tmp_path), use_cpu=True)
    assert config.bf16 is True and config.precision.reason.startswith("bfloat16, automatic")
    assert precision.resolve_dtype("auto", use_cpu=True) == "bfloat16"


def test_bf16_on_a_machine_without_an_accelerator_needs_no_use_cpu(probe_says, tmp_path):
    """transformers refuses bf16 without an accelerator unless use_cpu is set; a recipe that sets neither (as the
    shipped ones do) must still build where the CPU has native bfloat16, automatically or when asked for."""
    probe_says(0.6)
    assert precision.runs_on_cpu()  # CI has no accelerator
    assert FastCuRLConfig(output_dir=str(tmp_path)).bf16 is True
    assert FastCuRLConfig(output_dir=str(tmp_path), bf16=True).bf16 is True
    assert FastCuRLConfig(output_dir=str(tmp_path)).use_cpu is True


def test_explicit_setting_wins_and_a_slow_bf16_warns_with_the_slowdown(probe_says, tmp_path, caplog):
    probe_says(40.0)
    assert FastCuRLConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False).bf16 is False
    with caplog.at_level(logging.WARNING, logger="fastcurl.generation.precision"):
        config = FastCuRLConfig(output_dir=str(tmp_path), use_cpu=True, bf16=True)
    assert config.bf16 is True
    assert "40x slower than in float32" in caplog.text


def test_the_real_probe_on_an_avx2_capped_cpu_picks_float32(tmp_path):
    code = (
        "from fastcurl.curriculum.config import FastCuRLConfig\n"
        f"c = FastCuRLConfig(output_dir={str(tmp_path)!r}, use_cpu=True)\n"
        "print('BF16', c.bf16); print('REASON', c.precision.reason)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=AVX2_ONLY,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "BF16 False" in result.stdout, result.stdout
    assert "no native bfloat16" in result.stdout


def test_our_recipes_set_off_no_deprecation_warning():
    from fastcurl.cli import parse_train_args

    for recipe in sorted((ROOT / "configs").glob("*.yaml")):
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            warnings.simplefilter("error", DeprecationWarning)
            parse_train_args(["--config", str(recipe), "--use_cpu", "true"], need_model=False, this_machine=False)
        text = recipe.read_text()
        assert "gradient_checkpointing" not in text and "bf16: true" not in text, recipe.name


def test_cli_help_lists_every_verb_and_train_help_starts_with_ours():
    top = subprocess.run([sys.executable, "-m", "fastcurl.cli", "--help"], capture_output=True, text=True, env=ENV,
                         timeout=300)
    assert top.returncode == 0
    for verb in ("train", "plan", "segment", "eval", "push"):
        assert f"\n  {verb} " in top.stdout
    train = subprocess.run([sys.executable, "-m", "fastcurl.cli", "train", "--help"], capture_output=True,
                           text=True, env=ENV, timeout=300)
    assert train.returncode == 0
    lines = train.stdout.splitlines()
    assert len(lines) < 250
    assert any("--config" in line for line in lines[:10])
    own = lines.index(next(line for line in lines if line.startswith("  --stages")))
    inherited = lines.index(next(line for line in lines if line.startswith("  --learning_rate")))
    assert own < inherited
    assert "--help_all" in train.stdout and "noop_guard_patience" in train.stdout
    everything = subprocess.run([sys.executable, "-m", "fastcurl.cli", "train", "--help_all"], capture_output=True,
                                text=True, env=ENV, timeout=300)
    assert everything.returncode == 0 and "--gradient_accumulation_steps" in everything.stdout


def test_train_help_is_read_from_the_source_without_importing_trl():
    """`fastcurl train --help` reads the config classes' fields from their source files (about 0.2 s instead of
    TRL's seconds-long import); what it prints equals the help built from the imported dataclasses."""
    from fastcurl.cli import train_help

    assert train_help() == train_help(from_source=False)
    probe = ("import sys; from fastcurl.cli import main; main(['train', '--help']); "
             "print(sorted(m for m in ('trl', 'transformers', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[-1] == "[]" and "--stages" in result.stdout


def test_public_classes_document_their_parameters_with_an_example():
    from fastcurl import CurriculumCallback, CurriculumGRPOTrainer

    for cls in (CurriculumGRPOTrainer, CurriculumCallback):
        doc = cls.__doc__ or ""
        assert "Args:" in doc and "Example" in doc, cls.__name__
    assert "reward_funcs" in CurriculumGRPOTrainer.__doc__ and "train_dataset" in CurriculumGRPOTrainer.__doc__


def tiny_recipe(model_path: str, output_dir: Path) -> dict:
    return {
        "model_name_or_path": model_path, "reward_funcs": ["plain_accuracy"], "output_dir": str(output_dir),
        "use_cpu": True, "report_to": "none", "logging_steps": 1, "save_strategy": "no",
        "per_device_train_batch_size": 4, "learning_rate": 1e-3, "seed": 0,
        "stages": [
            {"name": "short", "dataset": "synthetic", "dataset_kwargs": {"num_problems": 48}, "segment": "L1",
             "max_completion_length": 8, "num_generations": 4, "prompts_per_rollout_step": 2, "rollout_steps": 1},
            {"name": "long", "dataset": "synthetic", "dataset_kwargs": {"num_problems": 48}, "segment": "L3",
             "max_completion_length": 16, "num_generations": 4, "prompts_per_rollout_step": 2, "rollout_steps": 1},
        ],
    }


@pytest.mark.parametrize("log_level", ["passive", "info"])
def test_console_shows_stage_lines_and_metrics_dicts_only_when_asked(tiny_model_path, tmp_path, log_level):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tiny_model_path, tmp_path / "run")))
    result = subprocess.run(
        [sys.executable, "-m", "fastcurl.cli", "train", "--config", str(recipe), "--log_level", log_level],
        capture_output=True, text=True, env=ENV, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    console = result.stdout + result.stderr
    assert "[fastcurl] precision: " in console
    assert "stage 1/2 'short' done" in console and "stage 2/2 'long' done" in console
    assert "FutureWarning" not in console
    dicts = [line for line in console.splitlines() if "{'loss'" in line]
    if log_level == "info":
        assert dicts
    else:
        assert not dicts
        assert "Writing model shards" not in console and "Loading weights" not in console
        assert "Map:" not in console


def test_finished_run_keeps_one_copy_of_the_final_model(tiny_model_path, tmp_path):
    from transformers import AutoModelForCausalLM

    recipe = tmp_path / "recipe.yaml"
    out = tmp_path / "run"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tiny_model_path, out)))
    result = subprocess.run([sys.executable, "-m", "fastcurl.cli", "train", "--config", str(recipe)],
                            capture_output=True, text=True, env=ENV, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    final, last_stage = out / "model.safetensors", out / "stage-2-long" / "model.safetensors"
    assert final.exists() and last_stage.exists()
    assert os.path.samefile(final, last_stage)  # one file on disk, two names
    first_stage = out / "stage-1-short" / "model.safetensors"
    assert not os.path.samefile(first_stage, last_stage)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.num_parameters() > 0


def test_the_callers_config_is_left_as_given(tiny_model_path, tmp_path):
    from fastcurl import CurriculumGRPOTrainer, StageConfig

    stages = [StageConfig(name=n, dataset="synthetic", dataset_kwargs={"num_problems": 32}, segment=seg,
                          rollout_steps=1, max_completion_length=length, num_generations=2,
                          prompts_per_rollout_step=p, overrides=o)
              for n, seg, length, p, o in (("a", "L1", 8, 4, {}), ("b", "L3", 12, 2, {"learning_rate": 5e-4}))]
    config = FastCuRLConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", save_strategy="no",
                            per_device_train_batch_size=2, learning_rate=1e-3, push_to_hub=True,
                            hub_model_id="me/never-pushed", stages=stages)
    before = config.to_dict()
    trainer = CurriculumGRPOTrainer(model=tiny_model_path, reward_funcs=lambda completions, **kw: [0.0] * len(
        completions), args=config, run_callbacks=[])  # nothing leaves this machine; the point is the config object
    trainer.train()
    assert trainer.args is not config and trainer.args.max_completion_length == 12
    assert config.to_dict() == before


def test_accelerates_default_mixed_precision_is_not_taken_for_a_choice(probe_says, tmp_path, monkeypatch):
    probe_says(0.6)
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")  # what `accelerate launch` sets when nothing is configured
    config = FastCuRLConfig(output_dir=str(tmp_path), use_cpu=True)
    assert config.bf16 is True and "automatic" in config.precision.reason
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    probe_says(30.0)
    assert FastCuRLConfig(output_dir=str(tmp_path), use_cpu=True).bf16 is True  # asked for at launch: kept
