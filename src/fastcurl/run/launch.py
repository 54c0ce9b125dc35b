"""`fastcurl launch`: `accelerate launch` whose exit status tells a cluster how the run ended.

Slurm, Kubernetes and torchrun stop a job with SIGTERM, then SIGKILL after a grace period. fastcurl's ranks take a
SIGTERM as "save one checkpoint and stop" (``run.signals``) and exit 0, but the launcher above them does not know
that: `accelerate launch` exits 143 (128 + SIGTERM) whenever it was signalled, so the scheduler marks a cleanly
stopped run as failed, and with one process accelerate kills the script 5 s after forwarding the signal, usually
in the middle of the checkpoint. This launcher takes the same arguments as `accelerate launch` and differs in two
ways:

- each rank that stopped on a signal after saving writes a report (``rank-<RANK>.json``, with its checkpoint) to a
  folder this launcher names in ``FASTCURL_STOP_REPORTS``; when the launcher was signalled and every local rank
  reported, it exits 0, and otherwise with accelerate's status;
- a single process is run directly and given ``--grace`` seconds (torchrun's 30 by default) after the signal.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STOP_REPORTS_ENV = "FASTCURL_STOP_REPORTS"
DEFAULT_GRACE_S = 30


def report_clean_stop(step: int, checkpoint: str | None) -> None:
    """Called by a rank that stopped on a signal with its checkpoint saved; a no-op outside ``fastcurl launch``."""
    folder = os.environ.get(STOP_REPORTS_ENV)
    if not folder or not Path(folder).is_dir():
        return
    rank = int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    report = {"rank": rank, "local_world_size": local_world_size, "step": step, "checkpoint": checkpoint,
              "pid": os.getpid()}
    staged = Path(folder) / f".rank-{rank}.json.tmp"
    staged.write_text(json.dumps(report))
    os.replace(staged, Path(folder) / f"rank-{rank}.json")


def read_stop_reports(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("rank-*.json"))]


def every_rank_stopped_cleanly(reports: list[dict[str, Any]]) -> bool:
    """One report from each local rank, all at the same update."""
    if not reports:
        return False
    expected = reports[0]["local_world_size"]
    return ({r["rank"] for r in reports} == set(range(expected)) and len({r["step"] for r in reports}) == 1)


def _run_single_process(args: Any, grace_s: float) -> int:
    """accelerate's simple launcher, with the script given ``grace_s`` after a SIGTERM (accelerate gives 5 s)."""
    from accelerate.commands.launch import prepare_simple_launcher_cmd_env

    command, env = prepare_simple_launcher_cmd_env(args)
    child = subprocess.Popen(command, env=env)
    signalled: list[int] = []

    def forward(signum, frame):
        signalled.append(signum)
        if child.poll() is None:
            child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        while True:
            try:
                returncode = child.wait(timeout=grace_s) if signalled else child.wait()
                break
            except subprocess.TimeoutExpired:
                print(f"fastcurl launch: the script did not stop within {grace_s:g} s of SIGTERM; killing it.",
                      file=sys.stderr)
                child.kill()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if signalled and returncode == 0:
        return 0
    return returncode if returncode >= 0 else 128 - returncode


def one_process_arguments(args: Any) -> Any | None:
    """The resolved arguments when `accelerate launch` would start the script as one plain process (its "simple"
    launcher), else None."""
    import copy

    from accelerate.commands.launch import _validate_launch_command  # resolves the config file and defaults

    resolved, _, _ = _validate_launch_command(copy.deepcopy(args))
    distributed = (resolved.use_deepspeed or resolved.use_fsdp or resolved.use_megatron_lm or resolved.multi_gpu
                   or resolved.tpu) and not resolved.cpu
    one = not distributed and (resolved.num_processes or 1) == 1 and (resolved.num_machines or 1) == 1
    return resolved if one else None


def launch(argv: list[str]) -> int:
    """Run ``argv`` as `accelerate launch` would; the exit status (0 after a signal every rank answered)."""
    from accelerate.commands.launch import launch_command, launch_command_parser

    grace_s = float(DEFAULT_GRACE_S)
    if argv[:1] == ["--grace"]:  # ours, first: accelerate's parser must not see it
        try:
            grace_s = float(argv[1])
        except (IndexError, ValueError):
            print("fastcurl launch: error: --grace needs a number of seconds, e.g. --grace 30", file=sys.stderr)
            return 2
        argv = argv[2:]
    parser = launch_command_parser()
    parser.prog = "fastcurl launch"
    args = parser.parse_args(argv)
    reports = Path(tempfile.mkdtemp(prefix="fastcurl-stop-reports-"))
    os.environ[STOP_REPORTS_ENV] = str(reports)
    os.environ.setdefault("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", str(int(grace_s)))
    try:
        resolved = one_process_arguments(args)
        if resolved is not None:
            return _run_single_process(resolved, grace_s)
        started = time.monotonic()
        try:
            launch_command(args)
            return 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
            if code == 128 + signal.SIGTERM:
                stopped = read_stop_reports(reports)
                if every_rank_stopped_cleanly(stopped):
                    print(f"fastcurl launch: stopped by SIGTERM after {time.monotonic() - started:.0f} s; every "
                          f"rank saved {Path(stopped[0]['checkpoint'] or '').name or 'its state'} at update "
                          f"{stopped[0]['step']} and exited. Resume with resume_from_checkpoint=True "
                          "(fastcurl train --resume).", file=sys.stderr)
                    return 0
                print(f"fastcurl launch: stopped by SIGTERM, but only {len(stopped)} rank(s) reported a saved "
                      "checkpoint; exiting with accelerate's status.", file=sys.stderr)
            return code
    finally:
        shutil.rmtree(reports, ignore_errors=True)
