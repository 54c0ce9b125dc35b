"""Checkpoints a resume can trust: complete only when proven so, found by that proof, full disks named as such.

A FastCuRL run is days long; whatever kills it (a preemption, a SIGKILL mid-write, a full disk), the newest
*complete* checkpoint must resume it exactly. transformers writes ``checkpoint-N/`` file by file and its
``get_last_checkpoint`` looks only at names, so a checkpoint a crash cut short would be resumed from. Here a
checkpoint is complete when its marker, written after every file of every rank, lists each file with its size,
and every file still has that size (a weights file also a readable header).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import struct
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "fastcurl_complete.json"
WRITING = ".fastcurl_writing"  # put in a checkpoint before its first file, removed after its marker
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _files(path: Path) -> dict[str, int]:
    return {str(f.relative_to(path)): f.stat().st_size for f in sorted(path.rglob("*"))
            if f.is_file() and f.name not in (COMPLETE_MARKER, WRITING)}


def mark_complete(path: str | Path) -> None:
    """Write ``path``'s marker: every file and its size, fsynced, then renamed into place (written last)."""
    path = Path(path)
    listing = _files(path)
    tmp = path / f".{COMPLETE_MARKER}.{os.getpid()}.tmp"
    with open(tmp, "w") as handle:
        json.dump({"files": listing}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path / COMPLETE_MARKER)
    (path / WRITING).unlink(missing_ok=True)


def _safetensors_problem(file: Path) -> str | None:
    with open(file, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return "shorter than a safetensors header"
        (length,) = struct.unpack("<Q", head)
        try:
            header = json.loads(handle.read(length))
        except ValueError:
            return "unreadable safetensors header"
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if file.stat().st_size != 8 + length + end:
        return f"safetensors data is {file.stat().st_size} bytes, its header says {8 + length + end}"
    return None


def _unmarked_problem(path: Path) -> str | None:
    """A checkpoint without a marker: one written by plain transformers/TRL or an older fastcurl, or one whose
    writing stopped before the marker. transformers writes ``trainer_state.json`` last, so it is accepted when that
    file reads and every weights file's header and size are whole."""
    try:
        json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return f"no {COMPLETE_MARKER} and no readable trainer_state.json (its writing did not finish)"
    return _weights_problem(path, sorted(str(f.relative_to(path)) for f in path.rglob("*.safetensors")))


def _weights_problem(path: Path, names: Any) -> str | None:
    for name in names:
        if name.endswith(".safetensors"):
            problem = _safetensors_problem(path / name)
            if problem:
                return f"{name}: {problem}"
    return None


def checkpoint_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a complete checkpoint, or None when it is."""
    path = Path(path)
    try:
        listed = json.loads((path / COMPLETE_MARKER).read_text())["files"]
    except (OSError, ValueError, KeyError):
        if (path / COMPLETE_MARKER).exists():
            return f"its {COMPLETE_MARKER} is unreadable (cut or damaged)"
        if (path / WRITING).exists():
            return f"no {COMPLETE_MARKER}: its writing did not finish"
        return _unmarked_problem(path)
    for name, size in listed.items():
        file = path / name
        try:
            found = file.stat().st_size
        except OSError:
            return f"{name} is missing"
        if found != size:
            return f"{name} is {found} bytes, {size} were written"
    return _weights_problem(path, listed)


def find_last_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete ``checkpoint-N`` in ``output_dir``; each incomplete newer one is named in a warning."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = sorted(((int(m.group(1)), child) for child in root.iterdir()
                    if (m := _CHECKPOINT.match(child.name)) and child.is_dir()), reverse=True)
    for _, checkpoint in found:
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return checkpoint
        message = f"[fastcurl] skipping incomplete checkpoint {checkpoint}: {problem}."
        from .console import warn

        warn(logger, message)
    return None


def discard_incomplete(path: Path) -> None:
    """A crash's half-written ``checkpoint-N`` at the step about to be saved again: removed, so no stale file stays."""
    if path.is_dir() and checkpoint_problem(path) is not None:
        shutil.rmtree(path, ignore_errors=True)


def _is_disk_full(error: BaseException, directory: Path, needed: int) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if getattr(seen, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    try:
        return shutil.disk_usage(directory).free < max(needed, 1 << 20)
    except OSError:
        return False


def checkpoint_size(path: Path | None) -> int:
    return sum(_files(path).values()) if path is not None and path.is_dir() else 0


def explain_write_failure(error: BaseException, target: Path, previous: Path | None) -> BaseException:
    """The error to raise when writing ``target`` failed: a full disk is named as such whatever the writer raised.

    safetensors, torch's zip writer and ``json`` each raise their own error on a full disk; the free space left
    and the size of the previous checkpoint (what a new one needs) tell it apart.
    """
    needed = checkpoint_size(previous)
    if not _is_disk_full(error, target.parent, needed):
        return error
    free = shutil.disk_usage(target.parent).free
    return OSError(
        errno.ENOSPC,
        f"Could not write {target.name} to {target.parent}: the disk is full ({type(error).__name__}: {error}). "
        f"{free / 2**20:.1f} MiB are free; a checkpoint of this run needs about {needed / 2**20:.1f} MiB. The "
        f"previous complete checkpoint ({previous or 'none yet'}) is intact: free space (or lower "
        "save_total_limit) and rerun with --resume.",
    )


def write_checkpoint(trainer: Any, write: Any, target: Path) -> None:
    """Run ``write`` (transformers' checkpoint save) so that ``target`` counts only once it is proven complete.

    A crash's half-written ``target`` is removed first; rotation (``save_total_limit``) is held back until the marker
    is written, so it never deletes the previous complete checkpoint before the new one is; a failed write (a full
    disk, whatever the writer raised) is named with the previous complete checkpoint, which stays intact.
    """
    from transformers.trainer_utils import rotate_checkpoints

    args, accelerator = trainer.args, trainer.accelerator
    if args.should_save:
        discard_incomplete(target)
        target.mkdir(parents=True, exist_ok=True)
        (target / WRITING).touch()
    accelerator.wait_for_everyone()
    limit, args.save_total_limit = args.save_total_limit, None
    try:
        write()
    except Exception as error:
        if args.should_save:
            shutil.rmtree(target, ignore_errors=True)  # a half-written checkpoint only takes space
        explained = explain_write_failure(error, target, find_last_checkpoint(target.parent))
        if explained is error:
            raise
        raise explained from error
    finally:
        args.save_total_limit = limit
    accelerator.wait_for_everyone()  # every rank's files are written
    if args.should_save:
        mark_complete(target)
        rotate_checkpoints(output_dir=str(target.parent), save_total_limit=limit,
                           best_model_checkpoint=trainer.state.best_model_checkpoint, use_mtime=True)
    accelerator.wait_for_everyone()


def link_policy_files(source: Path, out: Path) -> None:
    """``out`` gets the policy in ``source``: weights hard-linked (never rewritten in place), small files copied."""
    from .manifests import link_or_copy

    out.mkdir(parents=True, exist_ok=True)
    for file in source.iterdir():
        if file.name == COMPLETE_MARKER:
            continue
        if file.suffix == ".safetensors":
            link_or_copy(file, out / file.name)
        elif file.is_file():  # small files a user may rewrite in place: their own copy
            shutil.copy2(file, out / file.name)


def publish_directory(staged: Path, final: Path) -> None:
    """``staged`` (complete, marked) becomes ``final``; the previous ``final`` stays as ``.<name>.old`` until then.

    Two renames, so at every moment one complete copy exists: ``final``, or ``.<name>.old`` between the renames
    (:func:`complete_directory` finds either).
    """
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(staged, final)
    shutil.rmtree(old, ignore_errors=True)


def complete_directory(final: Path) -> Path | None:
    """``final`` when it is complete, else its previous copy left by an interrupted :func:`publish_directory`."""
    for candidate in (final, final.with_name(f".{final.name}.old")):
        if candidate.is_dir() and checkpoint_problem(candidate) is None:
            return candidate
    return None


def save_last_complete_update(trainer: Any) -> None:
    """A checkpoint of the state after the last finished update (an interrupted one left the weights untouched)."""
    from .signals import GracefulStop

    stop = trainer.run_callback(GracefulStop)
    if stop is not None:
        stop.requested = True
    here = Path(trainer.args.output_dir) / f"checkpoint-{trainer.state.global_step}"
    if find_last_checkpoint(trainer.args.output_dir) != here:
        trainer.save_checkpoint_now()
