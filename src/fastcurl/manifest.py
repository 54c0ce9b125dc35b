"""What a run leaves behind to be understood later: ``run_manifest.json`` and ``stage_manifest.json``."""

from __future__ import annotations

import json
import os
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGES = ("fastcurl", "trl", "transformers", "torch", "accelerate", "datasets", "peft", "math-verify", "vllm",
            "deepspeed")


def package_versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def git_revision(directory: str | Path = ".") -> str | None:
    """The commit of the user's working directory (with ``-dirty`` when it has changes), or None."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=directory, capture_output=True, text=True,
                               timeout=5).stdout.strip()
        return rev.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def write_run_manifest(output_dir: str | Path, config: dict[str, Any], seed: int, model: str | None) -> Path:
    path = Path(output_dir) / "run_manifest.json"
    write_json_atomic(
        path,
        {
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "model": model,
            "seed": seed,
            "git_revision": git_revision(),
            "packages": package_versions(),
            "config": config,
        },
    )
    return path


def update_stage_manifest(output_dir: str | Path, record: dict[str, Any]) -> Path:
    """Add or replace one stage's record (keyed by its index) in ``stage_manifest.json``."""
    path = Path(output_dir) / "stage_manifest.json"
    stages = json.loads(path.read_text())["stages"] if path.exists() else []
    stages = [s for s in stages if s["index"] != record["index"]] + [record]
    write_json_atomic(path, {"stages": sorted(stages, key=lambda s: s["index"])})
    return path


def read_stage_manifest(output_dir: str | Path) -> list[dict[str, Any]]:
    """The stage records written so far (empty before the first stage ends)."""
    path = Path(output_dir) / "stage_manifest.json"
    try:
        return json.loads(path.read_text())["stages"]
    except (OSError, ValueError, KeyError):
        return []


def link_or_copy(source: Path, target: Path) -> None:
    """``target`` becomes the same file as ``source``: a hard link where the filesystem allows it, else a copy.

    Written under a temporary name and renamed, so a reader never sees a half-written ``target``.
    """
    import shutil

    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copy2(source, tmp)
    os.replace(tmp, target)
