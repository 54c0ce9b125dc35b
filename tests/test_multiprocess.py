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
    # 16-bit weights gathered on save: stage checkpoints stay loadable (and restore the KL reference on resume)
    "zero3": ["--use_deepspeed", "--zero_stage", "3", "--zero3_save_16bit_model", "true"],
}


def launch_command(kind: str, model: str, out: Path, *extra: str, launcher: str = "accelerate"
                   ) -> tuple[list[str], dict]:
    """``accelerate launch`` (``launcher="accelerate"``) or ``fastcurl launch`` of the two-rank script."""
    if kind.startswith("zero") and importlib.util.find_spec("deepspeed") is None:
        pytest.skip("DeepSpeed is not installed: DS_BUILD_OPS=0 pip install 'fastcurl[deepspeed]'")
    port = str(29500 + (os.getpid() + int(time.time())) % 1000)
    module = {"accelerate": ["accelerate.commands.launch"], "fastcurl": ["fastcurl.cli", "launch"]}[launcher]
    command = [sys.executable, "-m", *module, *LAUNCHERS[kind], "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               port, str(SCRIPT), model, str(out), *extra]
    return command, {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}


def launch(kind: str, model: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    command, env = launch_command(kind, model, out, *extra)
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def read(out: Path) -> list[dict]:
    return [json.loads(line) for rank in (0, 1) for line in (out / f"rank-{rank}.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ddp", "zero2", "zero3"])
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


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ddp", "zero3"])
def test_sigterm_to_one_rank_stops_both_at_one_saved_update(kind, tiny_model_path, tmp_path):
    """Row 2: SIGTERM (from this test) to rank 1 only, inside stage 2: both ranks learn of it at the next update,
    save one checkpoint together and exit 0, as does the launcher; the run then resumes (the KL reference restored
    from stage 1's checkpoint) to the same final policy as an uninterrupted run."""
    import signal

    from fastcurl.run.checkpoints import find_last_checkpoint

    out = tmp_path / "run"
    command, env = launch_command(kind, tiny_model_path, out, "--save", "--slow")
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    rank_1 = out / "rank-1.jsonl"
    deadline = time.monotonic() + 240
    pid = None
    while pid is None and launcher.poll() is None and time.monotonic() < deadline:
        lines = rank_1.read_text().splitlines() if rank_1.exists() else []
        steps = [json.loads(line) for line in lines if '"reward"' in line]
        if steps and steps[-1]["step"] >= 3:
            pid = steps[-1]["pid"]
        time.sleep(0.1)
    assert pid is not None, launcher.communicate()[1][-3000:]
    os.kill(pid, signal.SIGTERM)
    stdout, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode == 0, stderr[-4000:]
    done = [r for r in read(out) if r["kind"] == "done"]
    assert len(done) == 2 and len({r["step"] for r in done}) == 1 and all(r["stopped_by_signal"] for r in done)
    stopped_at = done[0]["step"]
    assert stopped_at < 4 and find_last_checkpoint(out).name == f"checkpoint-{stopped_at}"
    assert_resumes_to_the_uninterrupted_policy(kind, tiny_model_path, tmp_path, out)


def assert_resumes_to_the_uninterrupted_policy(kind: str, model: str, tmp_path: Path, out: Path) -> None:
    resumed = launch(kind, model, out, "--save", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    finished = {r["rank"]: r for r in read(out) if r["kind"] == "done"}  # each rank's last
    assert {r["step"] for r in finished.values()} == {4} and len(finished) == 2
    assert not any(r["stopped_by_signal"] for r in finished.values())
    whole = tmp_path / "whole"
    assert launch(kind, model, whole, "--save").returncode == 0
    expected = {r["rank"]: r for r in read(whole) if r["kind"] == "done"}
    assert {r["policy"] for r in finished.values()} == {r["policy"] for r in expected.values()}


def start_and_wait_for_update(command: list[str], env: dict, out: Path, update: int) -> tuple[subprocess.Popen, dict]:
    """The launcher running, once both ranks have scored update ``update``; the pid of each rank."""
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    pids: dict[int, int] = {}
    while len(pids) < 2 and launcher.poll() is None and time.monotonic() < deadline:
        for rank in (0, 1):
            path = out / f"rank-{rank}.jsonl"
            steps = [json.loads(line) for line in (path.read_text().splitlines() if path.exists() else [])
                     if '"reward"' in line]
            if steps and steps[-1]["step"] >= update:
                pids[rank] = steps[-1]["pid"]
        time.sleep(0.1)
    assert len(pids) == 2, launcher.communicate()[1][-3000:]
    return launcher, pids


@pytest.mark.slow
@pytest.mark.parametrize("targets", ["launcher", "launcher and every rank"])
def test_sigterm_to_the_launcher_stops_every_rank_and_the_launcher_with_exit_0(targets, tiny_model_path, tmp_path):
    """Rows 2-3: SIGTERM to the launcher (torchrun forwards it to each rank) or, as Slurm's scancel does, to the
    launcher and every rank at once. Every rank saves the same update and exits 0, and `fastcurl launch` exits 0
    within torchrun's 30 s grace (`accelerate launch` itself exits 143 after any signal); then the run resumes to
    the uninterrupted run's policy."""
    import signal

    from fastcurl.run.checkpoints import find_last_checkpoint

    out = tmp_path / "run"
    command, env = launch_command("ddp", tiny_model_path, out, "--save", "--slow", launcher="fastcurl")
    launcher, pids = start_and_wait_for_update(command, env, out, 3)
    signalled = time.monotonic()
    for pid in [launcher.pid] + (list(pids.values()) if targets != "launcher" else []):
        os.kill(pid, signal.SIGTERM)
    stdout, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode == 0, stderr[-4000:]
    assert time.monotonic() - signalled < 30
    assert "every rank saved checkpoint-" in stderr
    done = [r for r in read(out) if r["kind"] == "done"]
    assert len(done) == 2 and len({r["step"] for r in done}) == 1 and all(r["stopped_by_signal"] for r in done)
    assert find_last_checkpoint(out).name == f"checkpoint-{done[0]['step']}"
    assert_resumes_to_the_uninterrupted_policy("ddp", tiny_model_path, tmp_path, out)


@pytest.mark.slow
def test_sigkill_of_one_rank_then_resume_reaches_the_uninterrupted_policy(tiny_model_path, tmp_path):
    """A node dies: SIGKILL (from this test) to rank 1 at a random moment of update 2-3. torchrun stops the other
    rank and the launcher fails (nothing could be saved for the dead rank); the newest complete checkpoint is
    kept and the resumed run ends at the policy of an uninterrupted one."""
    import random
    import signal

    from fastcurl.run.checkpoints import find_last_checkpoint

    out = tmp_path / "run"
    command, env = launch_command("ddp", tiny_model_path, out, "--save", "--slow")
    launcher, pids = start_and_wait_for_update(command, env, out, random.choice([2, 3]))
    time.sleep(random.uniform(0.0, 1.0))
    os.kill(pids[1], signal.SIGKILL)
    stdout, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode != 0
    last = find_last_checkpoint(out)
    assert last is not None and int(last.name.split("-")[1]) < 4
    assert_resumes_to_the_uninterrupted_policy("ddp", tiny_model_path, tmp_path, out)


@pytest.mark.slow
@pytest.mark.parametrize("flag, switch, ended_by", [
    # Issue 16: a stage with advance_when (maximum 4 rollout steps) ends after 2 on both ranks, at one update.
    ("--adaptive", 2, "advance_when after 2 updates"),
    # A subclass's rule may read per-rank values: rank 0 alone ends stage 1 after one update (the run hung when
    # each rank followed its own answer).
    ("--rank0-advances", 1, "RankZeroAdvances.should_advance after 1 of 2 updates"),
], ids=["advance_when", "should_advance on rank 0 only"])
def test_two_ranks_take_the_same_advance(flag, switch, ended_by, tiny_model_path, tmp_path):
    """Both ranks enter stage 2 at the same update, whichever rule ended stage 1 and on whichever rank it held."""
    out = tmp_path / "advance"
    result = launch("ddp", tiny_model_path, out, flag)
    assert result.returncode == 0, result.stderr[-4000:]
    records = read(out)
    starts = sorted((r["rank"], r["step"], r["stage"]) for r in records if r["kind"] == "stage_start")
    assert starts == [(0, 0, 0), (0, switch, 1), (1, 0, 0), (1, switch, 1)]
    assert [r["step"] for r in records if r["kind"] == "done"] == [switch + 2] * 2
    manifest = json.loads((out / "stage_manifest.json").read_text())["stages"]
    assert manifest[0]["ended_by"].startswith(ended_by)


@pytest.mark.slow
def test_a_run_started_on_one_process_resumes_on_two(tiny_model_path, tmp_path):
    """A preempted job often comes back on another number of GPUs: the checkpoint of update 1 (inside stage 1) of
    a one-process run resumes under `accelerate launch` on two ranks (it was refused as 'another recipe': the
    digest held the per-device batch fields). Both ranks finish stage 1 with one more update, enter stage 2 at step
    2 with the accumulation of two processes, and end at the same update as the one-process run."""
    import shutil

    from fastcurl.run.checkpoints import find_last_checkpoint

    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    alone = subprocess.run([sys.executable, str(SCRIPT), tiny_model_path, str(out), "--save"], capture_output=True,
                           text=True, timeout=300, env=env)
    assert alone.returncode == 0, alone.stderr[-4000:]
    for name in ("checkpoint-2", "checkpoint-3", "checkpoint-4", "stage-1-short"):
        shutil.rmtree(out / name)
    assert find_last_checkpoint(out).name == "checkpoint-1"
    (out / "rank-0.jsonl").unlink()
    resumed = launch("ddp", tiny_model_path, out, "--save", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    records = read(out)
    starts = sorted((r["rank"], r["step"], r["stage"], r["grad_accum"]) for r in records if r["kind"] == "stage_start")
    assert starts == [(0, 2, 1, 4), (1, 2, 1, 4)]  # 8 prompts x 4 completions / (2 ranks x 4 per device)
    assert sorted((r["rank"], r["step"], r["stage"]) for r in records if r["kind"] == "reward") == [
        (rank, step, 0 if step <= 2 else 1) for rank in (0, 1) for step in (2, 3, 4)]
    assert [r["step"] for r in records if r["kind"] == "done"] == [4, 4]
    assert (out / "stage-1-short").is_dir()  # stage 1 ended in the resumed run, on two ranks


@pytest.mark.slow
def test_two_ranks_sample_dynamically_with_whole_groups_and_equal_counts(tiny_model_path, tmp_path):
    """Issue 16: dynamic sampling on 2 DDP ranks: each rank trains whole groups, the same number of them, after the
    same number of rounds (at most 3), and groups with a reward spread come before flat ones."""
    out = tmp_path / "dynamic"
    result = launch("ddp", tiny_model_path, out, "--dynamic")
    assert result.returncode == 0, result.stderr[-4000:]
    batches = [r for r in read(out) if r["kind"] == "batch"]
    by_step: dict[int, dict[int, dict]] = {}
    for batch in batches:
        by_step.setdefault(batch["step"], {})[batch["rank"]] = batch
    assert sorted(by_step) == [1, 2, 3, 4] and all(sorted(ranks) == [0, 1] for ranks in by_step.values())
    for step, ranks in by_step.items():
        assert ranks[0]["whole"] and ranks[1]["whole"]
        assert len(ranks[0]["spread"]) == len(ranks[1]["spread"])  # the same count of groups on each rank
        if ranks[0]["stage"] == 0:
            assert ranks[0]["rounds"] == ranks[1]["rounds"] and 1 <= ranks[0]["rounds"][0] <= 3
            for rank in ranks.values():
                assert rank["spread"] == sorted(rank["spread"], reverse=True)
                if ranks[0]["rounds"][0] < 3:
                    assert all(rank["spread"])
    assert any(ranks[0]["rounds"][0] > 1 for ranks in by_step.values() if ranks[0]["stage"] == 0)
    # the reward calls: one per round on each rank, in step
    calls = [(r["rank"], r["step"]) for r in read(out) if r["kind"] == "reward"]
    assert calls.count((0, 1)) == calls.count((1, 1)) == by_step[1][0]["rounds"][0]
