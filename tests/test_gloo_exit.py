"""A rank that finished must exit 0: no SIGABRT from torch's gloo threads while Python finalizes (run/gloo_exit.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fastcurl.run.gloo_exit import wait_for_gloo_threads

ROOT = Path(__file__).resolve().parents[1]

# What a DDP run leaves at exit: collectives just finished, the group destroyed, but still referred to (as a DDP
# model does), so its gloo threads live on. Without the wait, 9 in 20 such launches aborted on the 2-core machine.
RANK_SCRIPT = textwrap.dedent("""
    import torch
    import torch.distributed as dist

    from fastcurl.run.gloo_exit import wait_for_gloo_threads_at_exit

    wait_for_gloo_threads_at_exit()
    dist.init_process_group("gloo")
    for _ in range(50):
        gathered = [torch.zeros(1000) for _ in range(2)]
        dist.all_gather(gathered, torch.ones(1000))
        del gathered
    group_kept_alive = dist.group.WORLD
    dist.destroy_process_group()
""")


@pytest.mark.slow
def test_ranks_that_gathered_just_before_exit_all_exit_0(tmp_path):
    """Ten torchrun launches of two ranks (a user's script, no main guard); each rank all-gathers Python tensors up to
    its last line. Every launch exits 0 and no rank prints "terminate called"."""
    script = tmp_path / "ranks.py"
    script.write_text(RANK_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    for attempt in range(10):
        result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                                 "2", str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
        assert result.returncode == 0 and "terminate called" not in result.stderr, (attempt, result.stderr[-3000:])


def test_the_wait_returns_at_once_without_gloo_threads():
    """What a single-process run pays at exit (nothing to wait for)."""
    started = time.monotonic()
    assert wait_for_gloo_threads(timeout_s=5.0)
    assert time.monotonic() - started < 0.5


def test_building_the_trainer_registers_the_wait(tiny_model_path, tmp_path, monkeypatch):
    """Every run gets it, the CLI's and a Python user's alike: it is the trainer that registers it."""
    from types import SimpleNamespace

    from fastcurl import CurriculumGRPOTrainer, FastCuRLConfig, StageConfig
    from fastcurl.run import gloo_exit

    registered = []
    monkeypatch.setattr(gloo_exit, "_registered", False)
    monkeypatch.setattr(gloo_exit, "atexit", SimpleNamespace(register=registered.append))
    stage = StageConfig(dataset="synthetic", dataset_kwargs={"num_problems": 16}, segment="L1", rollout_steps=1,
                        max_completion_length=8, num_generations=4, prompts_per_rollout_step=4)
    args = FastCuRLConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, per_device_train_batch_size=4,
                          stages=[stage], disable_tqdm=True)
    CurriculumGRPOTrainer(model=tiny_model_path, reward_funcs=lambda completions, **kwargs: [0.0] * len(completions),
                          args=args)
    assert wait_for_gloo_threads in registered
