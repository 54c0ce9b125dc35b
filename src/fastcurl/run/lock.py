"""One run per ``output_dir``: two live runs writing one directory would mix their checkpoints."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

logger = logging.getLogger(__name__)

LOCK_NAME = ".fastcurl.lock"


class OutputDirInUse(RuntimeError):
    """Another live run holds the ``output_dir``."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire(output_dir: str | Path) -> Path:
    """Take ``output_dir``'s lock (pid, host, start time), or raise naming the run that holds it.

    A lock left by a dead process on this host is taken over; one from another host is refused (its process
    cannot be checked from here), with the file to delete named.
    """
    path = Path(output_dir) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text())
            except (OSError, ValueError):
                holder = {}
            pid, host = holder.get("pid"), holder.get("host")
            if host == mine["host"] and isinstance(pid, int) and not _alive(pid):
                logger.warning(f"Taking over {path}: its run (pid {pid}) is no longer alive.")
                path.unlink(missing_ok=True)
                continue
            raise OutputDirInUse(
                f"{output_dir} is in use by another run (pid {pid} on {host}, started {holder.get('started')}). "
                f"Use another output_dir, stop that run, or delete {path} if it is gone."
            ) from None
        with os.fdopen(fd, "w") as handle:
            json.dump(mine, handle)
        return path
    raise RuntimeError(f"Could not take the lock {path}.")


class OutputDirLock(TrainerCallback):
    """Holds ``output_dir``'s lock for the duration of ``train()`` (the main process takes it; every rank obeys)."""

    def __init__(self) -> None:
        self.path: Path | None = None

    def on_run_begin(self, trainer: Any) -> None:
        refused = None
        if trainer.args.should_save:
            try:
                self.path = acquire(trainer.args.output_dir)
            except OutputDirInUse as error:
                refused = str(error)
        if trainer.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            refused = broadcast_object_list([refused])[0]
        if refused:
            raise OutputDirInUse(refused)

    def on_run_exit(self, trainer: Any) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None
