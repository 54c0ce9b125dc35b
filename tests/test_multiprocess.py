"""Real multi-process curricula: `accelerate launch` with DDP (gloo on CPU) and DeepSpeed ZeRO-2, two ranks."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from fastcurl.data import make_synthetic_math, problem_text, segment_by_prompt_length

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "multiprocess_run.py"
LAUNCHERS = {
    # --multi_gpu picks torchrun-style launching; with no GPU, use_cpu=True makes every rank use gloo on CPU.
    "ddp": ["--multi_gpu"],
    "zero2": ["--use_deepspeed", "--zero_stage", "2"],
}


def launch(kind: str, model: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    if kind == "zero2" and importlib.util.find_spec("deepspeed") is None:
        pytest.skip("DeepSpeed is not installed: DS_BUILD_OPS=0 pip install 'fastcurl[deepspeed]'")
    port = str(29500 + (os.getpid() + int(time.time())) % 1000)
    command = [sys.executable, "-m", "accelerate.commands.launch", *LAUNCHERS[kind], "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               port, str(SCRIPT), model, str(out), *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def read(out: Path) -> list[dict]:
    return [json.loads(line) for rank in (0, 1) for line in (out / f"rank-{rank}.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ddp", "zero2"])
def test_two_ranks_switch_stages_together_with_whole_groups(kind, tiny_model_path, tmp_path):
    out = tmp_path / kind
    result = launch(kind, tiny_model_path, out)
    assert result.returncode == 0, result.stderr[-4000:]
    records = read(out)
    starts = [r for r in records if r["kind"] == "stage_start"]
    # every rank switches at the same global step, and the new reference equals the policy on every rank
    assert sorted((r["rank"], r["step"], r["stage"]) for r in starts) == [(0, 0, 0), (0, 2, 1), (1, 0, 0), (1, 2, 1)]
    assert {r["grad_accum"] for r in starts if r["stage"] == 1} == {4}  # 8 prompts x 4 / (2 ranks x 4)
    for r in starts:
        assert r["reference"] == pytest.approx(r["policy"], abs=1e-9)
    assert len({round(r["policy"], 6) for r in starts if r["stage"] == 1}) == 1  # same weights on both ranks

    data = make_synthetic_math(48)
    split = segment_by_prompt_length(data)
    segment_texts = {name: {p[-1]["content"] for p in split[name]["prompt"]} for name in ("L1", "L3")}
    rewards = [r for r in records if r["kind"] == "reward"]
    for step in (1, 2, 3, 4):
        on_step = [r for r in rewards if r["step"] == step]
        assert {r["rank"] for r in on_step} == {0, 1}
        stage = 0 if step <= 2 else 1
        assert {r["stage"] for r in on_step} == {stage} and {r["cap"] for r in on_step} == {(8, 16)[stage]}
        counts = Counter(p for r in on_step for p in r["prompts"])
        assert set(counts.values()) == {4}, counts  # each prompt exactly num_generations times globally
        assert len(counts) == (4, 8)[stage]  # prompts_per_rollout_step
        assert set(counts) <= segment_texts[("L1", "L3")[stage]]  # only the current stage's data
    done = [r for r in records if r["kind"] == "done"]
    assert [r["step"] for r in done] == [4, 4]
    if kind == "zero2":  # DeepSpeed made exactly one optimizer step per update, GA change included
        assert [r["engine_steps"] for r in done] == [4, 4]
    manifest = json.loads((out / "stage_manifest.json").read_text())["stages"]
    assert [(s["first_global_step"], s["last_global_step"]) for s in manifest] == [(1, 2), (3, 4)]
    for name in ("stage-1-short", "stage-2-long"):
        assert (out / name / "model.safetensors").stat().st_size > 0 and (out / name / "config.json").exists()


@pytest.mark.slow
def test_ranks_that_disagree_fail_fast(tiny_model_path, tmp_path):
    started = time.monotonic()
    result = launch("ddp", tiny_model_path, tmp_path / "mismatch", "--mismatch")
    assert result.returncode != 0
    assert "disagree on the curriculum" in result.stderr and "stage sizes" in result.stderr
    assert time.monotonic() - started < 120
