"""A rank that finished training must not abort at exit: wait for torch's gloo worker threads before Python finalizes.

torch's ProcessGroupGloo runs each collective on a worker thread ("pt_gloo_runloop") and drops the collective's
tensors there, just after the caller's ``wait()`` has returned. Dropping a tensor that Python created takes the
GIL. When the interpreter has started to finalize by then, the thread exits inside a C++ destructor and the process
dies with "terminate called without an active exception" (SIGABRT): torchrun reports a failed rank after a run
that completed and saved everything. ``destroy_process_group()`` does not help while a DDP model still refers to
the group (its threads live on). Measured on the 2-core CI machine: 2 aborts in 47 runs of the two-rank test
script, and 11 in 20 for a script that all-gathers and exits (tests/test_gloo_exit.py).

At exit, before finalization, the main thread sleeps (releasing the GIL) until every gloo worker thread has been
asleep for a few polls in a row: none is then still holding a tensor. It costs nothing in a process without gloo
threads and at most ``timeout_s`` otherwise.
"""

from __future__ import annotations

import atexit
import os
import time

GLOO_WORKER_THREAD = "pt_gloo_runloop"
_registered = False


def _gloo_worker_states() -> list[str] | None:
    """The scheduler state (``R``, ``S``, ...) of each gloo worker thread of this process; None without ``/proc``."""
    tasks = "/proc/self/task"
    if not os.path.isdir(tasks):
        return None
    states = []
    for tid in os.listdir(tasks):
        try:
            with open(f"{tasks}/{tid}/stat") as f:
                stat = f.read()
        except OSError:  # the thread ended while we looked
            continue
        name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:]
        if name == GLOO_WORKER_THREAD:
            states.append(rest.split(" ", 1)[0])
    return states


def wait_for_gloo_threads(timeout_s: float = 2.0, poll_s: float = 0.005, quiet_polls: int = 3) -> bool:
    """Sleep until every gloo worker thread has been asleep (``S``) for ``quiet_polls`` polls in a row.

    The GIL is released while sleeping, so a thread waiting for it to drop a tensor gets it and finishes. Returns
    False if threads were still busy after ``timeout_s`` (then the process exits as it would have anyway).
    """
    states = _gloo_worker_states()
    if states is None:  # no /proc (not Linux): a short sleep covers the usual case
        time.sleep(0.05)
        return True
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while states:
        quiet = quiet + 1 if all(state == "S" for state in states) else 0
        if quiet >= quiet_polls:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
        states = _gloo_worker_states() or []
    return True


def wait_for_gloo_threads_at_exit() -> None:
    """Register :func:`wait_for_gloo_threads` to run at exit (once per process; atexit runs before finalization)."""
    global _registered
    if not _registered:
        atexit.register(wait_for_gloo_threads)
        _registered = True
