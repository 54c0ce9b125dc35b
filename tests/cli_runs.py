"""`fastcurl train` of a recipe in a subprocess, as a user (or a cluster) starts it, for tests that act on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def start_train(recipe: dict, tmp_path: Path, out: Path, record: Path, *extra: str) -> subprocess.Popen:
    """The recipe written to ``tmp_path/recipe.yaml`` and trained into ``out``, its reward recording to ``record``
    (tests/recording_reward.py); output piped."""
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{TESTS}", "FASTCURL_TEST_RECORD": str(record)}
    return subprocess.Popen([sys.executable, "-m", "fastcurl.cli", "train", "--config", str(path), "--output_dir",
                             str(out), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
