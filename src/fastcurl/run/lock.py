"""One run per ``output_dir``: two live runs writing one directory would mix their checkpoints."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ..errors import RunInputError

logger = logging.getLogger(__name__)

LOCK_NAME = ".fastcurl.lock"


class OutputDirInUse(RunInputError, RuntimeError):
    """Another live run holds the ``output_dir`` (the user's to fix: the CLI shows it as one line)."""


def _holder(fd: int) -> dict[str, Any]:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}


def acquire(output_dir: str | Path) -> tuple[Path, int]:
    """Take ``output_dir``'s lock, or raise naming the run that holds it; the lock file and its open descriptor.

    The lock is the kernel's (``flock``), so it ends with its process however that dies: a SIGKILLed run's file
    is simply taken over, whatever pid or host it names (pids are reused; a requeued job runs on another node).
    The file's content (pid, host, start time) only names the holder in the message. ``flock`` works on local
    disks and NFS (Linux maps it to POSIX locks there).
    """
    path = Path(output_dir) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    for _ in range(10):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(fd)
            os.close(fd)
            who = (f"pid {holder['pid']} on {holder.get('host')}, started {holder.get('started')}" if "pid" in holder
                   else "it is just starting")
            raise OutputDirInUse(f"{output_dir} is in use by another run ({who}). Use another output_dir or stop "
                                 "that run.") from None
        try:  # a holder that was releasing may have removed the file we opened: lock the one at the path
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if not current:
            os.close(fd)
            continue
        previous = _holder(fd)
        if previous.get("pid") is not None:
            logger.warning(f"Taking over {path}: the run that wrote it (pid {previous['pid']} on "
                           f"{previous.get('host')}) no longer holds it.")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(mine).encode(), 0)
        return path, fd
    raise RuntimeError(f"Could not take the lock {path}: it kept being replaced.")


def release(path: Path, fd: int) -> None:
    path.unlink(missing_ok=True)  # removed while still held, then the kernel lock ends with the descriptor
    os.close(fd)


class OutputDirLock(TrainerCallback):
    """Holds ``output_dir``'s lock for the duration of ``train()`` (the main process takes it; every rank obeys)."""

    def __init__(self) -> None:
        self.held: tuple[Path, int] | None = None

    def on_init(self, args: Any) -> None:
        """Before the model loads, a busy ``output_dir`` fails at once (the lock itself is taken by ``train()``).

        Only the main process looks; should it fail, the launcher stops the other ranks with it."""
        if args is not None and args.should_save:
            release(*acquire(args.output_dir))

    def on_run_begin(self, trainer: Any) -> None:
        refused = None
        if trainer.args.should_save:
            try:
                self.held = acquire(trainer.args.output_dir)
            except OutputDirInUse as error:
                refused = str(error)
        if trainer.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            refused = broadcast_object_list([refused])[0]
        if refused:
            raise OutputDirInUse(refused)

    def on_run_exit(self, trainer: Any) -> None:
        if self.held is not None:
            release(*self.held)
            self.held = None
