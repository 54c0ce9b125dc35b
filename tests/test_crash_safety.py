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
from cli_runs import start_train
from transformers import AutoModelForCausalLM

from fastcurl import CurriculumGRPOTrainer, FastCuRLConfig, StageConfig
from fastcurl.run.checkpoints import find_last_checkpoint, mark_complete
from fastcurl.run.reward_errors import RewardErrorLimit

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


def start_cli(tmp_path: Path, model_path: str, out: Path, record: Path, **env: str) -> subprocess.Popen:
    """The crash recipe's `fastcurl train` in the background (its output piped), for faults sent while it runs."""
    return start_train(recipe(model_path), tmp_path, out, record, **env)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not path.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists(), process.communicate()[1][-3000:]


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
    for step in (1, 2, 3):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text('{"global_step": %d}' % step)
        mark_complete(tmp_path / f"checkpoint-{step}")
    (tmp_path / "checkpoint-3" / "trainer_state.json").write_text('{"trunc')  # cut after it was proven complete
    (tmp_path / "checkpoint-4").mkdir()  # its writing stopped early: no marker, no trainer state
    (tmp_path / "checkpoint-4" / "model.safetensors").write_bytes(b"\x10\x00")
    (tmp_path / "checkpoint-5").mkdir()  # no marker, its trainer state reads, but its weights are cut
    (tmp_path / "checkpoint-5" / "trainer_state.json").write_text("{}")
    header = b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}'
    (tmp_path / "checkpoint-5" / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 9)
    (tmp_path / ".staging" / "checkpoint-6").mkdir(parents=True)
    assert find_last_checkpoint(tmp_path).name == "checkpoint-2"
    # A checkpoint of plain transformers/TRL or an older fastcurl (no marker, every file whole) is taken.
    (tmp_path / "checkpoint-7").mkdir()
    (tmp_path / "checkpoint-7" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-7" / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    assert find_last_checkpoint(tmp_path).name == "checkpoint-7"


def small_trainer(tiny_model_path, tmp_path, reward, eval_dataset=None, **kwargs) -> CurriculumGRPOTrainer:
    stages = [StageConfig(name="only", dataset="synthetic", dataset_kwargs={"num_problems": 32},
                          max_completion_length=8, num_generations=4, prompts_per_rollout_step=2, rollout_steps=3)]
    args = FastCuRLConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", logging_steps=1,
                          per_device_train_batch_size=8, seed=0, stages=stages, disable_tqdm=True,
                          **{"save_strategy": "no", **kwargs})
    return CurriculumGRPOTrainer(model=tiny_model_path, reward_funcs=reward, args=args, eval_dataset=eval_dataset)


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


def copy_run(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


def test_a_truncated_newest_checkpoint_is_skipped_with_its_name(tiny_model_path, tmp_path, uninterrupted):
    """Row 4: the newest checkpoint's weights cut short, then --resume: the previous complete one, named."""
    full_dir, full = uninterrupted
    out = copy_run(full_dir, tmp_path / "run")
    weights_file = out / "checkpoint-5" / "model.safetensors"
    with open(weights_file, "r+b") as handle:
        handle.truncate(weights_file.stat().st_size // 2)
    record = tmp_path / "record.jsonl"
    resumed = cli(tmp_path, tiny_model_path, out, record, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"skipping incomplete checkpoint {out / 'checkpoint-5'}: model.safetensors is" in resumed.stdout
    assert f"resuming from {out / 'checkpoint-4'}" in resumed.stdout
    assert records(record)[5] == full[5]
    final, reference = weights(out), weights(full_dir)
    assert all(torch.equal(final[n], t) for n, t in reference.items())
    assert find_last_checkpoint(out).name == "checkpoint-5"  # written again, whole


def test_resume_refuses_a_checkpoint_of_another_recipe(tiny_model_path, tmp_path, uninterrupted):
    """Row 7b: the resolved stages differ from the checkpoint's: refused unless forced."""
    full_dir, _ = uninterrupted
    out = copy_run(full_dir, tmp_path / "run")
    for name in ("checkpoint-4", "checkpoint-5", "stage-2-long"):
        import shutil

        shutil.rmtree(out / name)
    changed = recipe(tiny_model_path)
    changed["stages"][1]["rollout_steps"] = 4
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(changed))
    environment = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{TESTS}"}
    command = [sys.executable, "-m", "fastcurl.cli", "train", "--config", str(path), "--output_dir", str(out),
               "--resume"]
    refused = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    assert refused.returncode == 2 and "trained under another recipe" in refused.stderr, refused.stderr[-2000:]
    assert "Traceback" not in refused.stderr
    assert "[fastcurl] precision" not in refused.stdout  # refused before the trainer loads the model
    forced = subprocess.run([*command, "--resume_with_changed_recipe", "true"], capture_output=True, text=True,
                            env=environment, timeout=300)
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert "[fastcurl] precision" in forced.stdout
    assert find_last_checkpoint(out).name == "checkpoint-6"


def test_one_run_per_output_dir(tiny_model_path, tmp_path):
    """Row 8: a second run on a live run's output_dir is refused; a dead run's lock is taken over."""
    out, record = tmp_path / "run", tmp_path / "record.jsonl"
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe(tiny_model_path)))
    environment = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{TESTS}", "FASTCURL_TEST_RECORD": str(record)}
    command = [sys.executable, "-m", "fastcurl.cli", "train", "--config", str(path), "--output_dir", str(out)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**environment, "FASTCURL_TEST_REWARD_SLEEP": "4"})
    try:
        lock = out / ".fastcurl.lock"
        deadline = __import__("time").monotonic() + 240
        while not lock.exists() and first.poll() is None and __import__("time").monotonic() < deadline:
            __import__("time").sleep(0.2)
        assert lock.exists(), "the first run never took the lock"
        second = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
        assert second.returncode == 2 and "is in use by another run (pid" in second.stderr, second.stderr[-2000:]
        assert "[fastcurl] precision" not in second.stdout  # refused before the trainer loads the model
        assert first.poll() is None  # the first run is untouched ...
    finally:
        stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr[-3000:]  # ... and finishes with its own checkpoints only
    assert "[fastcurl] precision" in stdout
    manifest = json.loads((out / "stage_manifest.json").read_text())["stages"]
    assert [(s["first_global_step"], s["last_global_step"]) for s in manifest] == [(1, 2), (3, 5)]
    assert not (out / ".fastcurl.lock").exists()
    # A lock file left by a run that died (SIGKILL leaves it behind) is taken over, whatever it names: a live pid
    # of another process (pids are reused) on another host (a requeued job runs on another node).
    (out / ".fastcurl.lock").write_text(json.dumps({"pid": 1, "host": "node-that-died", "started": "x"}))
    again = subprocess.run([*command, "--resume"], capture_output=True, text=True, env=environment, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]


def test_a_reward_that_fails_on_the_batch_is_counted(tiny_model_path, tmp_path):
    """Row 11: a batch call that raises while every single sample scores: logged and counted."""

    def batch_shy(completions, **kwargs):
        if len(completions) > 1:
            raise RuntimeError("this reward cannot score a batch")
        return [1.0]

    trainer = small_trainer(tiny_model_path, tmp_path, batch_shy, reward_error_limit=1000)
    trainer.train()
    logged = [e for e in trainer.state.log_history if "rewards/batch_shy/batch_errors" in e]
    assert [e["rewards/batch_shy/batch_errors"] for e in logged] == [1.0, 2.0, 3.0]
    assert all(e["rewards/batch_shy/errors"] == 0 for e in logged)


def test_best_model_survives_rotation(tiny_model_path, tmp_path):
    """Row 7: load_best_model_at_end with save_total_limit: the best checkpoint is a final path and is kept."""
    from datasets import Dataset

    from fastcurl.data import make_synthetic_math

    evaluation = Dataset.from_list(list(make_synthetic_math(num_problems=4, seed=3)))
    trainer = small_trainer(tiny_model_path, tmp_path, poisoned, reward_error_limit=1000, save_strategy="steps",
                            save_steps=1, eval_strategy="steps", eval_steps=1, save_total_limit=1,
                            load_best_model_at_end=True, metric_for_best_model="reward", greater_is_better=True,
                            per_device_eval_batch_size=8, eval_on_stage_end=False, eval_dataset=evaluation)
    trainer.train()
    best = Path(trainer.state.best_model_checkpoint)
    assert best.parent == tmp_path and best.is_dir() and find_last_checkpoint(tmp_path) is not None
    assert ".staging" not in str(best)


def test_a_hanging_reward_ends_with_an_error_naming_it_and_the_stage(tiny_model_path, tmp_path):
    """Row 6a: reward_timeout ends a reward call that never returns, naming the function and the stage."""
    import time

    out, record = tmp_path / "run", tmp_path / "record.jsonl"
    started = time.monotonic()
    hung = cli(tmp_path, tiny_model_path, out, record, "--reward_timeout", "5", env={"FASTCURL_TEST_HANG_AT": "4"})
    assert hung.returncode != 0 and time.monotonic() - started < 240
    assert "Reward function 'recorded_reward' did not return within 5 s (reward_timeout) in stage 2 'long', " \
           "update 4" in hung.stderr, hung.stderr[-2000:]
    assert find_last_checkpoint(out).name == "checkpoint-3"


def test_sigterm_during_a_hanging_reward_saves_and_exits_within_the_grace_period(tiny_model_path, tmp_path,
                                                                                   uninterrupted):
    """Row 6b: SIGTERM from outside while the reward hangs: the last complete update is saved, exit 0 in 30 s."""
    import time

    full_dir, full = uninterrupted
    out, record = tmp_path / "run", tmp_path / "record.jsonl"
    process = start_cli(tmp_path, tiny_model_path, out, record, FASTCURL_TEST_HANG_AT="4")
    wait_for(Path(str(record) + ".hanging"), process)
    process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    stdout, stderr = process.communicate(timeout=60)
    assert time.monotonic() - sent < 30 and process.returncode == 0, stderr[-3000:]
    assert "stopped by SIGTERM at update 3" in stdout
    assert find_last_checkpoint(out).name == "checkpoint-3"
    record.unlink()
    resumed = cli(tmp_path, tiny_model_path, out, record, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sorted(records(record)) == [4, 5]


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_sigkill_at_ten_random_moments_resumes_bit_identically(tiny_model_path, tmp_path, uninterrupted):
    """SIGKILL from this test (not at an injection point) at 10 moments spread over a two-stage run, then
    --resume: every resumed run ends with the uninterrupted run's weights, and redoes its updates exactly."""
    import random
    import time

    full_dir, full = uninterrupted
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe(tiny_model_path)))
    environment = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{TESTS}"}
    draw = random.Random(20261202)
    # Each moment: a random update's reward call seen in the record, then a random part of a second more.
    moments = [(draw.randint(1, 5), draw.uniform(0.0, 1.0)) for _ in range(10)]
    reference = weights(full_dir)
    outcomes = []
    for trial, (step, delay) in enumerate(moments):
        out, record = tmp_path / f"run{trial}", tmp_path / f"record{trial}.jsonl"
        process = subprocess.Popen([sys.executable, "-m", "fastcurl.cli", "train", "--config", str(path),
                                    "--output_dir", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env={**environment, "FASTCURL_TEST_RECORD": str(record)})
        deadline = time.monotonic() + 300
        while process.poll() is None and time.monotonic() < deadline and not (
                record.exists() and f'"step": {step},' in record.read_text()):
            time.sleep(0.01)
        time.sleep(delay)
        moment = f"update {step} + {delay:.2f}s"
        killed = process.poll() is None
        if killed:
            process.kill()
        process.wait(timeout=60)
        last = find_last_checkpoint(out) if out.exists() else None
        outcomes.append((moment, killed, last.name if last else None))
        if record.exists():
            record.unlink()
        resumed = cli(tmp_path, tiny_model_path, out, record, "--resume")
        assert resumed.returncode == 0, (outcomes[-1], resumed.stderr[-3000:])
        for step, entry in records(record).items() if record.exists() else []:
            assert entry == full[step], (outcomes[-1], step)
        final = weights(out)
        assert all(torch.equal(final[n], t) for n, t in reference.items()), outcomes[-1]
        manifest = json.loads((out / "stage_manifest.json").read_text())["stages"]
        assert [(s["first_global_step"], s["last_global_step"]) for s in manifest] == [(1, 2), (3, 5)]
    print("killed at (moment, killed, newest complete checkpoint):", outcomes)
    assert sum(killed for _, killed, _ in outcomes) >= 8  # the moments fall inside the run, not after it
    assert len({newest for _, killed, newest in outcomes if killed}) >= 3  # and in different parts of it


@pytest.fixture
def small_disk(tmp_path):
    """A real 64 MiB filesystem (tmpfs; needs root, as CI runs)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_real_full_disk_names_the_space_needed_and_keeps_the_previous_checkpoint(tiny_model_path, tmp_path,
                                                                                     small_disk, uninterrupted):
    """Row 5: the disk fills (another writer takes the space) between two checkpoints."""
    import time

    full_dir, _ = uninterrupted
    out, record = small_disk / "run", tmp_path / "record.jsonl"
    process = start_cli(tmp_path, tiny_model_path, out, record, FASTCURL_TEST_REWARD_SLEEP="3")
    wait_for(out / "checkpoint-1" / "fastcurl_complete.json", process)
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY)  # take every free byte, as another job on the node would
    for block in (1 << 20, 4096, 1):
        try:
            while True:
                os.write(fd, b"\0" * block)
        except OSError:
            pass
    os.close(fd)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode != 0
    assert "Could not write checkpoint-2" in stderr and "the disk is full" in stderr, stderr[-3000:]
    assert "MiB are free; a checkpoint of this run needs about" in stderr and "checkpoint-1) is intact" in stderr
    assert find_last_checkpoint(out).name == "checkpoint-1"
    filler.unlink()
    record.unlink()
    resumed = cli(tmp_path, tiny_model_path, out, record, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {out / 'checkpoint-1'}" in resumed.stdout
    final, reference = weights(out), weights(full_dir)
    assert all(torch.equal(final[n], t) for n, t in reference.items())


def test_fastcurl_launch_gives_one_process_the_grace_period_and_exits_0(tiny_model_path, tmp_path, uninterrupted):
    """Row 3, one process: SIGTERM to `fastcurl launch` while the reward hangs. The script needs ~10 s to give up
    on the reward and save (`accelerate launch` kills it 5 s after forwarding the signal); the launcher waits,
    the last complete update is saved and both exit 0 within 30 s."""
    import time

    out, record = tmp_path / "run", tmp_path / "record.jsonl"
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe(tiny_model_path)))
    environment = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{TESTS}", "FASTCURL_TEST_RECORD": str(record),
                   "FASTCURL_TEST_HANG_AT": "4"}
    process = subprocess.Popen(
        [sys.executable, "-m", "fastcurl.cli", "launch", "--num_processes", "1", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "fastcurl.cli", "train", "--config", str(path),
         "--output_dir", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    wait_for(Path(str(record) + ".hanging"), process)
    process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0 and time.monotonic() - sent < 30, stderr[-3000:]
    assert "stopped by SIGTERM at update 3" in stdout
    assert find_last_checkpoint(out).name == "checkpoint-3"


def _take_lock(directory: str, start, results) -> None:
    from fastcurl.run.lock import OutputDirInUse, acquire

    start.wait()
    try:
        acquire(directory)
        results.put(1)
        __import__("time").sleep(0.3)  # hold it while the other tries
    except OutputDirInUse:
        results.put(0)


def test_two_runs_taking_over_one_stale_lock_at_once_never_both_get_it(tmp_path):
    """The review's race: two processes released together on a lock file of a dead run (12 trials)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    for trial in range(12):
        directory = tmp_path / str(trial)
        directory.mkdir()
        (directory / ".fastcurl.lock").write_text(json.dumps({"pid": 999999, "host": "gone", "started": "x"}))
        start, results = context.Event(), context.Queue()
        takers = [context.Process(target=_take_lock, args=(str(directory), start, results)) for _ in range(2)]
        for taker in takers:
            taker.start()
        start.set()
        for taker in takers:
            taker.join(timeout=60)
        assert results.get(timeout=10) + results.get(timeout=10) == 1, f"trial {trial}"


@pytest.mark.parametrize(("reward", "signalled"), [("async_hang_reward", False), ("async_hang_reward", True),
                                                   ("alarm_hang_reward", False), ("c_hang_reward", False)])
def test_rewards_that_sigalrm_cannot_stop_still_end_the_run(tiny_model_path, tmp_path, reward, signalled):
    """The review's hangs: an async reward (its event loop cancels it: the named error, or after SIGTERM the last
    update saved and exit 0), one that resets the alarm timer and one stuck in C code (the interpreter's watchdog:
    tracebacks and exit 1, reward_timeout + 12 s later). The last complete checkpoint stays the resume point."""
    import time

    out, record = tmp_path / "run", tmp_path / "record.jsonl"
    process = start_train({**recipe(tiny_model_path), "reward_funcs": [f"recording_reward:{reward}"]}, tmp_path, out,
                          record, "--reward_timeout", "60" if signalled else "5", FASTCURL_TEST_HANG_AT="3")
    wait_for(Path(str(record) + ".hanging"), process)
    started = time.monotonic()
    if signalled:
        process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    took = time.monotonic() - started
    if signalled:
        assert process.returncode == 0 and took < 30, stderr[-3000:]
        assert "stopped by SIGTERM at update 2" in stdout
    elif reward == "async_hang_reward":
        assert process.returncode != 0 and took < 30
        assert f"Reward function '{reward}' did not return within 5 s (reward_timeout) in stage 2 'long', update 3" \
            in stderr, stderr[-3000:]
    else:
        assert process.returncode == 1 and took < 5 + 12 + 15, stderr[-3000:]
        assert "Timeout" in stderr and reward in stderr  # faulthandler's dump names the reward's frame
    assert find_last_checkpoint(out).name == "checkpoint-2"


def test_a_users_script_into_a_busy_output_dir_fails_before_the_model_loads(tiny_model_path, tmp_path):
    """The lock was taken at train(), after the model had loaded (minutes for a 1.5B model on a busy node)."""
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from fastcurl.run.lock import acquire; "
                               f"acquire({str(out)!r}); print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    try:
        assert holder.stdout.readline().strip() == "held"
        script = tmp_path / "user" / "train.py"
        script.parent.mkdir()
        script.write_text(
            "from fastcurl import CurriculumGRPOTrainer, FastCuRLConfig, StageConfig\n"
            "from fastcurl.rewards import accuracy_reward\n"
            f"config = FastCuRLConfig(output_dir={str(out)!r}, use_cpu=True, per_device_train_batch_size=4, "
            "stages=[StageConfig(dataset='synthetic', rollout_steps=1, prompts_per_rollout_step=2, "
            "num_generations=2, max_completion_length=8)])\n"
            f"CurriculumGRPOTrainer({str(tiny_model_path)!r}, accuracy_reward, args=config)\n")
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                                cwd=script.parent, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        assert result.returncode == 1 and "OutputDirInUse" in result.stderr, result.stderr[-3000:]
        assert f"{out} is in use by another run (pid {holder.pid}" in result.stderr
        assert "[fastcurl] precision" not in result.stdout
        assert holder.poll() is None and (out / ".fastcurl.lock").exists()  # the holder keeps its lock
    finally:
        holder.kill()
        holder.wait()
