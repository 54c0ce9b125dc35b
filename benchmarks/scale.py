"""Steps per second of the two-stage tiny curriculum on 1 process versus 2 (DDP, ZeRO-2), and kill-to-resume time.

All on this machine's CPU with the tiny test model, in one run:
- the same two-stage run (tests/multiprocess_run.py) as one plain process, under `accelerate launch` with DDP
  (gloo) and with DeepSpeed ZeRO-2, two processes each; steps/s from transformers' own train_runtime;
- a CLI run killed with SIGKILL during update 4 (FASTCURL_FAULT=mid_step:4), then `--resume`: seconds from the
  kill to the first resumed update's reward call, split into process start-up + model load and the update itself.

    python benchmarks/scale.py
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import build_tiny_model  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests'}", "OMP_NUM_THREADS": "1"}
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
          "--mixed_precision", "no", "--dynamo_backend", "no"]


def train_runtime(output: str) -> float:
    return float(re.findall(r"'train_runtime': '([0-9.]+)'", output)[-1])


def run_two_stage(model: Path, out: Path, launcher: list[str] | None) -> float:
    script = [str(ROOT / "tests" / "multiprocess_run.py"), str(model), str(out)]
    command = [*LAUNCH, *launcher, *script] if launcher is not None else [sys.executable, *script]
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return 4 / train_runtime(result.stdout + result.stderr)  # four optimizer updates


def kill_to_resume(model: Path, tmp: Path) -> tuple[float, float]:
    recipe = {
        "model_name_or_path": str(model), "reward_funcs": ["recording_reward:recorded_reward"], "use_cpu": True,
        "report_to": "none", "logging_steps": 1, "save_strategy": "steps", "save_steps": 1,
        "per_device_train_batch_size": 4, "learning_rate": 1e-3, "seed": 0, "disable_tqdm": True,
        "stages": [{"name": n, "dataset": "synthetic", "dataset_kwargs": {"num_problems": 48}, "segment": seg,
                    "max_completion_length": cap, "num_generations": 4, "prompts_per_rollout_step": 2,
                    "rollout_steps": steps} for n, seg, cap, steps in (("short", "L1", 8, 2), ("long", "L3", 16, 3))],
    }
    (tmp / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    record = tmp / "record.jsonl"
    command = [sys.executable, "-m", "fastcurl.cli", "train", "--config", str(tmp / "recipe.yaml"), "--output_dir",
               str(tmp / "run")]
    killed = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env={**ENV, "FASTCURL_FAULT": "mid_step:4", "FASTCURL_TEST_RECORD": str(record)})
    killed_at = time.monotonic()
    assert killed.returncode == -9, killed.stderr[-2000:]
    record.unlink()
    process = subprocess.Popen([*command, "--resume"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**ENV, "FASTCURL_TEST_RECORD": str(record)})
    while not record.exists() or not record.read_text().strip():
        time.sleep(0.05)
    first_step = time.monotonic() - killed_at
    process.wait(timeout=600)
    return first_step, json.loads(record.read_text().splitlines()[0])["step"]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = build_tiny_model(tmp / "model")
        single = run_two_stage(model, tmp / "one", None)
        ddp = run_two_stage(model, tmp / "ddp", ["--multi_gpu"])
        try:
            zero2 = run_two_stage(model, tmp / "zero2", ["--use_deepspeed", "--zero_stage", "2"])
        except RuntimeError as error:
            zero2 = None
            print(f"ZeRO-2 run failed (is deepspeed installed?): {error}")
        seconds, step = kill_to_resume(model, tmp)
    print("two-stage tiny curriculum, 4 updates, CPU (2 cores), OMP_NUM_THREADS=1 per process")
    print(f"  1 process          : {single:6.2f} updates/s")
    print(f"  2 processes, DDP   : {ddp:6.2f} updates/s  ({ddp / single:.2f}x of 1 process)")
    if zero2 is not None:
        print(f"  2 processes, ZeRO-2: {zero2:6.2f} updates/s  ({zero2 / single:.2f}x of 1 process)")
    print(f"SIGKILL during update 4 -> first resumed update (update {step}) called its reward after "
          f"{seconds:.1f} s (process start, imports, model and checkpoint load, generation)")


if __name__ == "__main__":
    main()
