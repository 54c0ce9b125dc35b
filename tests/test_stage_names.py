"""Stage names are made once: the trainer's checkpoint directories, `fastcurl plan`, the stage manifest and the Hub
branches agree, for unnamed stages and for a curriculum that returns to the same data and length."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from fastcurl.run.hub import model_card, stage_branch

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def test_every_consumer_uses_the_same_stage_names(tiny_model_path, tmp_path):
    stage = {"dataset": "synthetic", "dataset_kwargs": {"num_problems": 32}, "max_completion_length": 8,
             "num_generations": 2, "prompts_per_rollout_step": 2, "rollout_steps": 1}
    recipe = {
        "model_name_or_path": tiny_model_path, "reward_funcs": ["plain_accuracy"], "output_dir": str(tmp_path / "run"),
        "use_cpu": True, "report_to": "none", "save_strategy": "no", "per_device_train_batch_size": 2,
        "stages": [{**stage, "segment": "L2"}, {**stage, "segment": "L1"}, {**stage, "segment": "L2"},
                   {**stage, "segment": "L2", "name": "L2-8-2"}, {**stage}],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    expected = ["L2-8", "L1-8", "L2-8-3", "L2-8-2", "stage5-8"]

    plan = subprocess.run([sys.executable, "-m", "fastcurl.cli", "plan", str(path), "--json", str(tmp_path / "p.json")],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert plan.returncode == 0, plan.stderr[-2000:]
    planned = json.loads((tmp_path / "p.json").read_text())
    assert [row["name"] for row in planned] == expected

    train = subprocess.run([sys.executable, "-m", "fastcurl.cli", "train", "--config", str(path)], capture_output=True,
                           text=True, env=ENV, timeout=900, cwd=tmp_path)
    assert train.returncode == 0, train.stderr[-3000:]
    run = tmp_path / "run"
    records = json.loads((run / "stage_manifest.json").read_text())["stages"]
    assert [r["name"] for r in records] == expected
    directories = sorted(p.name for p in run.iterdir() if p.is_dir() and p.name.startswith("stage-"))
    branches = [stage_branch(r["index"], r["name"]) for r in records]
    assert directories == sorted(branches) == sorted(f"stage-{i + 1}-{n}" for i, n in enumerate(expected))
    assert [Path(r["checkpoint"]).name for r in records] == branches
    assert [r["run_name"] for r in records] == [row["run_name"] for row in planned] == branches
    manifest = json.loads((run / "run_manifest.json").read_text())
    assert [p["run_name"] for p in manifest["plan"]] == branches  # the recipe's stages stay as given (unnamed)
    assert [s.get("name") for s in manifest["config"]["stages"]] == [None, None, None, "L2-8-2", None]
    card = str(model_card(run, "me/names"))
    assert [line.split("`")[1] for line in card.splitlines() if line.startswith("| ") and "`stage-" in line] \
        == branches
    assert f'revision="{branches[0]}"' in card
