"""The symbolic-check worker: its own program, ``python -m fastcurl.rewards.worker``, spoken to over pipes.

Started as a program rather than a ``multiprocessing`` child, it never imports the user's ``__main__``: a
training script without ``if __name__ == "__main__":`` runs its top level once, not once per worker, and code
piped to ``python`` or typed into Jupyter works the same. It imports math-verify and nothing of the training
stack.

Two ways to run it. ``--fork-server FD`` (POSIX, the default pool's choice): import math-verify once, then fork
a worker for each socket the pool passes over the Unix socket ``FD``; a fork is ready in milliseconds, so a
worker killed at its deadline is replaced at once instead of stalling the pool for another import. Without
arguments: serve one worker on stdin/stdout (where there is no ``fork``).

Protocol, one JSON document per line: a worker writes ``["ready", pid]`` once it can check, then answers each
request ``[answer, [gold, ...]]`` with ``true`` or ``false``. End of input ends it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import IO


SYMBOLIC_DIGITS = 40  # far beyond any gold's written precision: only exactly equal values agree to 40 digits


def symbolic_equal(answer: str, golds: Sequence[str]) -> bool:
    """Parse the LaTeX answer and golds with math-verify (an ANTLR grammar building sympy) and compare them."""
    from math_verify import LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False)]
    parsed_answer = parse(f"\\boxed{{{answer}}}", extraction_config=config, parsing_timeout=None)
    if not parsed_answer:
        return False
    for gold in golds:
        parsed_gold = parse(f"\\boxed{{{gold}}}", extraction_config=config, parsing_timeout=None)
        # math-verify rounds numbers to 6 decimals and evaluates to 15 digits by default: \\pi+10^{-20} would be \\pi.
        if parsed_gold and verify(parsed_gold, parsed_answer, float_rounding=SYMBOLIC_DIGITS,
                                  numeric_precision=2 * SYMBOLIC_DIGITS, timeout_seconds=None):
            return True
    return False


def serve(reader: IO[str], writer: IO[str]) -> None:
    """Answer requests from ``reader`` on ``writer`` until end of input."""
    writer.write(json.dumps(["ready", os.getpid()]) + "\n")
    writer.flush()
    for line in reader:
        try:
            answer, golds = json.loads(line)
            verdict = symbolic_equal(str(answer), [str(g) for g in golds])
        except Exception:
            verdict = False
        writer.write("true\n" if verdict else "false\n")
        writer.flush()


def fork_server(control_fd: int) -> None:
    """Fork one worker per socket received on ``control_fd``; exit (taking the workers along) when it closes."""
    control = socket.socket(fileno=control_fd)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps workers; the pool kills them by pid
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 64, 1)
        except OSError:
            break
        if not message:
            break
        if not fds:
            continue
        pid = os.fork()
        if pid == 0:
            control.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            with socket.socket(fileno=fds[0]) as sock:
                serve(sock.makefile("r", encoding="utf-8"), sock.makefile("w", encoding="utf-8"))
            os._exit(0)
        os.close(fds[0])
    if os.getpgid(0) == os.getpid():  # the pool started us as a group leader: take along stuck workers
        os.killpg(os.getpid(), signal.SIGKILL)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)  # it warns that we own the timeouts: we do
    out = sys.stdout
    sys.stdout = sys.stderr  # anything a library prints must not corrupt the protocol
    symbolic_equal("x+1", ["1+x"])  # imports and builds the parser before any worker says "ready"
    if argv[:1] == ["--fork-server"]:
        fork_server(int(argv[1]))
    else:
        serve(sys.stdin, out)


if __name__ == "__main__":
    main()
