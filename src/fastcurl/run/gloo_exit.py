"""A rank that finished training must not abort at exit: wait for torch's gloo worker threads before Python finalizes.

torch's ProcessGroupGloo runs each collective on a worker thread ("pt_gloo_runloop") and drops the collective's
tensors there, just after the caller's ``wait()`` has returned. Dropping a tensor that Python created takes the
GIL. When the interpreter has started to finalize by then, the thread exits inside a C++ destructor and the process
dies with "terminate called without an active exception" (SIGABRT): torchrun reports a failed rank after a run
that completed and saved everything. ``destroy_process_group()`` does not help while a DDP model still refers to
the group (its threads live on). Measured on the 2-core CI machine, before and after this wait: 2 aborts in 60 runs
of the two-rank test script (tests/multiprocess_run.py --adaptive), 0 in 60; 9 in 20 launches of a two-rank
script that all-gathers, destroys the group while still holding it, and exits (tests/test_gloo_exit.py), 0 in 20.

At exit, before finalization, the main thread sleeps (releasing the GIL) until no gloo worker thread has run for
a few polls in a row (asleep, its context-switch count unchanged): none is then still holding a tensor. It costs
nothing in a process without gloo threads, about 20 ms with idle ones, and at most ``timeout_s``.
"""

from __future__ import annotations

import atexit
import os
import time

GLOO_WORKER_THREAD = b"pt_gloo_runloop"
_registered = False


def _gloo_worker_activity() -> dict[str, tuple[bytes, int]] | None:
    """Each gloo worker thread's scheduler state (``b"S"``: asleep) and context switches so far, by thread id;
    None without ``/proc``. Read as bytes: a thread name cut inside a multibyte character is not UTF-8."""
    tasks = "/proc/self/task"
    if not os.path.isdir(tasks):
        return None
    activity = {}
    for tid in os.listdir(tasks):
        try:
            with open(f"{tasks}/{tid}/status", "rb") as f:
                fields = dict(line.split(b":", 1) for line in f.read().splitlines() if b":" in line)
            if fields.get(b"Name", b"").strip() != GLOO_WORKER_THREAD:
                continue
            switches = sum(int(fields.get(key, b"0")) for key in (b"voluntary_ctxt_switches",
                                                                   b"nonvoluntary_ctxt_switches"))
            activity[tid] = (fields.get(b"State", b"?").split()[0], switches)
        except (OSError, ValueError, IndexError):  # the thread ended while we looked, or an unexpected format
            continue
    return activity


def wait_for_gloo_threads(timeout_s: float = 2.0, poll_s: float = 0.005, quiet_polls: int = 4) -> bool:
    """Sleep until no gloo worker thread has run for ``quiet_polls`` polls in a row (asleep, no context switch).

    The GIL is released while sleeping, so a thread waiting for it to drop a tensor wakes, takes it and finishes:
    it is seen running or switching, and the quiet count starts again. Returns False if threads were still busy
    after ``timeout_s`` (then the process exits as it would have anyway).
    """
    before = _gloo_worker_activity()
    if before is None:  # no /proc (not Linux): a short sleep covers the usual case
        time.sleep(0.05)
        return True
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while before:
        time.sleep(poll_s)
        now = _gloo_worker_activity() or {}
        still = all(state == b"S" and before.get(tid, (None, -1))[1] == switches
                    for tid, (state, switches) in now.items())
        quiet = quiet + 1 if still else 0
        if quiet >= quiet_polls:
            return True
        if time.monotonic() > deadline:
            return False
        before = now
    return True


def wait_for_gloo_threads_at_exit() -> None:
    """Register :func:`wait_for_gloo_threads` to run at exit (once per process; atexit runs before finalization)."""
    global _registered
    if not _registered:
        atexit.register(wait_for_gloo_threads)
        _registered = True
