"""`fastcurl train` of a recipe in a subprocess, as a user (or a cluster) starts it, for tests that act on it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def start_train(recipe: dict, tmp_path: Path, out: Path, record: Path, *extra: str, **env: str) -> subprocess.Popen:
    """The recipe written to ``tmp_path/recipe.yaml`` and trained into ``out``, its reward recording to ``record``
    (tests/recording_reward.py), ``env`` added to the environment; output piped."""
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{TESTS}", "FASTCURL_TEST_RECORD": str(record),
           **env}
    return subprocess.Popen([sys.executable, "-m", "fastcurl.cli", "train", "--config", str(path), "--output_dir",
                             str(out), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def kill_during_update(process: subprocess.Popen, record: Path, update: int, timeout: float = 240) -> None:
    """SIGKILL ``process`` once its reward has been called for update ``update`` (or later), and reap it."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        lines = record.read_text().splitlines() if record.exists() else []
        if any(json.loads(line)["step"] >= update for line in lines):
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
