"""Answer equivalence: the cheap path, then exact numbers, then a symbolic check in a sandboxed worker.

The symbolic check runs math-verify's LaTeX parser (latex2sympy2_extended, an ANTLR grammar: it builds sympy
objects and never evaluates Python) in separate worker processes. Each check has a hard deadline; a worker that
misses it is killed and replaced, and the verdict is False. math-verify's own timeouts use signals, which only
work in a process's main thread, which is why workers are processes and not threads.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from multiprocessing.connection import wait
from pathlib import Path
from typing import IO, Any

from .normalize import (
    is_percent,
    normalize_answer,
    numbers_equal,
    strip_delimiters,
    trig_degrees_as_radians,
    strip_variable_prefix,
    unit_tail,
    units_of,
    variable_prefix,
)
from .numeric import decimals_as_fractions, fingerprint_equal, interval_equal

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 3.0
STARTUP_TIMEOUT = 120.0  # a worker that cannot import math-verify in this long is replaced
MAX_SYMBOLIC_CHARS = 600
# Python that has no business in a math answer; such answers are never handed to a parser. Keyed on what could
# matter to a parser that called Python (dunders, imports, calls of builtins, statements joined by a bare ``;``),
# not on LaTeX that math uses: ``\\;`` is a space and ``\\lambda`` a letter.
_SUSPICIOUS = re.compile(
    r"__|(?<!\\)\b(?:import|lambda|eval|exec|getattr|globals|compile)\b|\bos\.|\bsystem\b|\bopen\(|"
    r"\bsubprocess\b|(?<!\\);"
)


def worker_command(*args: str) -> list[str]:
    """The worker program: this interpreter running ``fastcurl.rewards.worker`` (never the user's ``__main__``)."""
    flags = ["-P"] if sys.version_info >= (3, 11) else []  # not the caller's directory first on the path
    return [sys.executable, *flags, "-m", "fastcurl.rewards.worker", *args]


def _worker_env() -> dict[str, str]:
    """The caller's environment, with this copy of fastcurl importable first (a source checkout works too)."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _can_fork() -> bool:
    return hasattr(os, "fork") and hasattr(socket, "send_fds") and hasattr(os, "killpg")


class _Connection:
    """A worker's line-based channel: ``send``, ``recv`` and ``fileno`` (for ``multiprocessing.connection.wait``)."""

    def __init__(self, reader: IO[str], writer: IO[str], closers: Sequence[Any] = ()) -> None:
        self._reader, self._writer, self._closers = reader, writer, [reader, writer, *closers]

    def fileno(self) -> int:
        return self._reader.fileno()

    def poll(self) -> bool:
        return bool(wait([self], timeout=0))

    def send(self, task: tuple[str, Sequence[str]] | None) -> None:
        if task is None:
            self._writer.close()
            return
        self._writer.write(json.dumps([task[0], list(task[1])]) + "\n")
        self._writer.flush()

    def recv(self) -> Any:
        line = self._reader.readline()
        if not line:
            raise EOFError("the worker exited")
        return json.loads(line)

    def close(self) -> None:
        for stream in self._closers:
            try:
                stream.close()
            except OSError:
                pass


class _ForkServer:
    """``python -m fastcurl.rewards.worker --fork-server``: imports math-verify once, then forks workers on request.

    The pool hands it one end of a fresh socket pair per worker; the forked worker is ready in milliseconds.
    It runs in a session of its own, so killing its process group takes every worker with it.
    """

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.process = subprocess.Popen(
            worker_command("--fork-server", str(theirs.fileno())), pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_worker_env(),
            cwd=tempfile.gettempdir(), start_new_session=True,
        )
        theirs.close()
        self.control = ours

    def alive(self) -> bool:
        return self.process.poll() is None

    def fork(self, sock: socket.socket) -> None:
        """Ask for a worker on ``sock`` (returns at once: the server forks once it has imported math-verify)."""
        socket.send_fds(self.control, [b"f"], [sock.fileno()])

    def owns(self, pid: int) -> bool:
        try:
            return os.getpgid(pid) == self.process.pid
        except OSError:
            return False

    def close(self) -> None:
        self.control.close()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


class _Worker:
    """One worker: forked by the fork server when there is one, else its own program on pipes."""

    def __init__(self, command: Sequence[str] | None, server: _ForkServer | None) -> None:
        self.server, self.process, self.pid = server, None, None
        if server is not None:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                server.fork(theirs)
            except OSError:
                pass  # a dead server: ours reads end of file, and the pool counts a failed start
            theirs.close()
            self.conn = _Connection(ours.makefile("r", encoding="utf-8"), ours.makefile("w", encoding="utf-8"),
                                    [ours])
        else:
            self.process = subprocess.Popen(
                list(command or worker_command()), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True, bufsize=1, env=_worker_env(), cwd=tempfile.gettempdir(),
                start_new_session=True,
            )
            self.conn = _Connection(self.process.stdout, self.process.stdin)
        self.ready = False
        self.task: int | None = None
        self.deadline = time.monotonic() + STARTUP_TIMEOUT

    def became_ready(self, message: Any) -> None:
        self.ready = True
        if isinstance(message, list) and len(message) == 2 and isinstance(message[1], int):
            self.pid = message[1]

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        elif self.pid is not None and self.server is not None and self.server.owns(self.pid):
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
        self.conn.close()


def default_num_workers() -> int:
    """Workers per process, so that all ranks on a node together use at most its cores (and at most 8 each)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("WORLD_SIZE") or 1)
    return max(1, min(8, cores // max(1, ranks)))


class SymbolicPool:
    """Worker processes for the symbolic check, with a hard per-check deadline.

    A check's deadline starts when a ready worker receives it, so a worker's start never turns a right answer
    into a timeout, and a batch goes on with the ready workers while others start. Workers are forked from one
    fork server (``python -m fastcurl.rewards.worker --fork-server``) that imported math-verify once: a worker
    killed at its deadline is replaced in milliseconds. ``stats`` (``symbolic_checks``, ``timeouts``,
    ``workers_replaced``, ``unavailable``) is what a trainer logs per step, so a struggling reward is visible.
    ``command`` runs each worker as its own program instead (no fork server).
    """

    def __init__(
        self, num_workers: int | None = None, timeout: float = DEFAULT_TIMEOUT, command: Sequence[str] | None = None
    ) -> None:
        self.num_workers = num_workers or default_num_workers()
        self.timeout = timeout
        self.command = list(command) if command else None
        self._server: _ForkServer | None = None
        self._workers: list[_Worker] = []
        self.stats = {"symbolic_checks": 0, "timeouts": 0, "workers_replaced": 0, "unavailable": 0}
        self._failed_starts = 0
        self._owner = os.getpid()
        self._lock = threading.Lock()
        self.broken = False

    def _give_up(self) -> None:
        self.broken = True
        self._close()
        logger.error(
            "fastcurl's symbolic-check workers die while starting, so answers that need a symbolic comparison "
            f"score 0. Check that this command runs: {' '.join(self.command or worker_command())} (math-verify "
            "must import in a fresh interpreter)."
        )

    def start(self) -> SymbolicPool:
        """Start the workers now, in the background (returns at once): the first reward call finds them ready.

        The trainer calls it at construction, so math-verify's import overlaps model loading.
        """
        with self._lock:
            if not self.broken:
                self._ensure_workers()
        return self

    @property
    def ready_workers(self) -> int:
        """Workers that have said they are ready (a benchmark or a health check may poll this)."""
        if self._lock.acquire(blocking=False):  # while a check runs, its loop owns the pipes
            try:
                for worker in self._workers:
                    if not worker.ready and worker.conn.poll():
                        try:
                            worker.became_ready(worker.conn.recv())
                        except (EOFError, OSError, ValueError):
                            pass
            finally:
                self._lock.release()
        return sum(w.ready for w in self._workers)

    def _new_worker(self) -> _Worker:
        if self.command is None and _can_fork():
            if self._server is None or not self._server.alive():
                if self._server is not None:
                    self._server.close()
                self._server = _ForkServer()
        return _Worker(self.command, self._server if self.command is None and _can_fork() else None)

    def _ensure_workers(self) -> None:
        if self._owner != os.getpid():  # a forked copy of the caller: the workers belong to the parent
            self._server, self._workers, self._owner = None, [], os.getpid()
        while len(self._workers) < self.num_workers:
            self._workers.append(self._new_worker())

    def map(self, tasks: Sequence[tuple[str, Sequence[str]]]) -> list[bool]:
        """Verdicts for (answer, golds) tasks, in order; False for any check past its deadline."""
        with self._lock:
            return self._map(tasks)

    def _map(self, tasks: Sequence[tuple[str, Sequence[str]]]) -> list[bool]:
        results = [False] * len(tasks)
        if not tasks:
            return results
        if self.broken:
            self.stats["unavailable"] += len(tasks)
            return results
        self._ensure_workers()
        pending = list(range(len(tasks)))[::-1]
        waiting: dict[_Connection, _Worker] = {w.conn: w for w in self._workers if not w.ready}
        idle = [w for w in self._workers if w.ready]
        while pending or any(w.task is not None for w in waiting.values()):
            while pending and idle:
                worker = idle.pop()
                index = pending.pop()
                worker.task, worker.deadline = index, time.monotonic() + self.timeout
                try:
                    worker.conn.send(tasks[index])
                except (BrokenPipeError, OSError):
                    worker.task = None
                    fresh = self._replace(worker)
                    waiting[fresh.conn] = fresh
                    pending.append(index)
                    continue
                waiting[worker.conn] = worker
                self.stats["symbolic_checks"] += 1
            if not waiting:
                continue
            soonest = min(w.deadline for w in waiting.values())
            for conn in wait(list(waiting), timeout=max(0.0, soonest - time.monotonic())):
                worker = waiting.pop(conn)
                try:
                    message = conn.recv()
                except (EOFError, OSError, ValueError):
                    if worker.task is not None:
                        worker.task = None
                    elif not worker.ready:
                        self._failed_starts += 1
                        if self._failed_starts >= 3 * self.num_workers:
                            self.stats["unavailable"] += len(pending) + sum(
                                w.task is not None for w in waiting.values())
                            self._give_up()
                            return results
                    fresh = self._replace(worker)
                    waiting[fresh.conn] = fresh
                    continue
                if worker.ready:
                    results[worker.task] = message is True
                    worker.task = None
                else:
                    worker.became_ready(message)
                    self._failed_starts = 0
                idle.append(worker)
            now = time.monotonic()
            for conn, worker in list(waiting.items()):
                if worker.deadline <= now:
                    waiting.pop(conn)
                    if worker.task is not None:
                        self.stats["timeouts"] += 1
                        worker.task = None
                    fresh = self._replace(worker)
                    waiting[fresh.conn] = fresh
        return results

    def _replace(self, worker: _Worker) -> _Worker:
        worker.kill()
        self.stats["workers_replaced"] += 1
        fresh = self._new_worker()
        self._workers[self._workers.index(worker)] = fresh
        return fresh

    def close(self) -> None:
        """Stop every worker (and the fork server); a later call starts them again."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        for worker in self._workers:
            try:
                worker.conn.send(None)
            except OSError:
                pass
            worker.kill()
        self._workers = []
        if self._server is not None:
            self._server.close()
            self._server = None


_POOL: SymbolicPool | None = None


def default_pool() -> SymbolicPool:
    """The process-wide pool, started on first use and stopped at exit."""
    global _POOL
    if _POOL is None:
        _POOL = SymbolicPool()
        atexit.register(_POOL.close)
    return _POOL


def _as_golds(gold: str | Iterable[str] | float | int) -> list[str]:
    if isinstance(gold, str):
        return [gold]
    if isinstance(gold, (int, float)):
        return [str(int(gold)) if float(gold).is_integer() else repr(gold)]
    return [str(g) for g in gold]


def _list_like(text: str) -> bool:
    return bool(re.search(r",\s", strip_delimiters(text)))


def gold_verdict(answer: str, gold: str) -> bool | None:
    """One gold: True/False when the cheap path decides, None when a symbolic check is needed.

    Contradictions decide first: different units after the numbers (``5 km``, ``5 m``) or different variables
    named (``x = 2``, ``x_1 = 2``) make the answer wrong whatever the numbers say.
    """
    units_a, units_g = units_of(answer), units_of(gold)
    if units_a and units_g and units_a != units_g:
        return False
    prefix_a, prefix_g = variable_prefix(answer), variable_prefix(gold)
    if prefix_a and prefix_g and prefix_a != prefix_g:
        return False
    norm_answer = normalize_answer(answer, thousands=not _list_like(gold))
    norm_gold = normalize_answer(gold, thousands=not _list_like(answer))
    if norm_answer == norm_gold:
        return True
    if norm_answer.isalpha() and norm_gold.isalpha() and (norm_answer.lower() in _WORDS or norm_gold.lower() in _WORDS):
        return norm_answer.lower() == norm_gold.lower()  # "no" is not "on", though n*o = o*n
    if norm_answer.count("'") != norm_gold.count("'"):
        return False  # f'(x) is not f(x): the symbolic parser drops primes
    verdict = numbers_equal(norm_answer, norm_gold, is_percent(answer), is_percent(gold))
    if verdict is None:
        verdict = based_numbers_equal(norm_answer, norm_gold)
    if verdict is None and not _WRAPPED_TEXT.search(answer + gold):
        verdict = fingerprint_equal(strip_variable_prefix(answer), strip_variable_prefix(gold))
    if verdict is None:
        verdict = interval_equal(norm_answer, norm_gold)  # x > 2 was normalised to (2,\infty)
    if verdict is None:
        verdict = _ratios_differ(norm_answer, norm_gold)
    return verdict


# Short answers that are words, not products of variables (the fingerprint reads ab as a*b and ba as the same).
_WORDS = frozenset("no yes on off or and if is it in at to up an as by do of so we am us be go not all none one two "
                   "odd even true false".split())
_RATIO = re.compile(r"^(\d+):(\d+)$")


def _ratios_differ(answer: str, gold: str) -> bool | None:
    """``3:5`` is not ``3:4`` (False); equal cross products (``6:8``, a time ``5:05``) are the parser's call."""
    a, g = _RATIO.match(answer), _RATIO.match(gold)
    if not (a and g):
        return None
    return None if int(a.group(1)) * int(g.group(2)) == int(a.group(2)) * int(g.group(1)) else False


def _units_contradict(answer: str, golds: Sequence[str]) -> bool:
    """The answer states units and matches the units of no gold that states any (``yr^{+1}`` for ``yr^{-1}``).

    A bare-number alternative among the golds (Minerva's ``15000`` beside ``15000 kcal m^{-2} yr^{-1}``) does
    not excuse a wrong unit: the unit-bearing gold says which unit is meant.
    """
    tail = unit_tail(answer)
    if tail is None:
        return False
    tails = [(g, unit_tail(g)) for g in golds]
    tails = [(g, t) for g, t in tails if t is not None]
    if not tails:
        return False
    for gold, gold_tail in tails:
        units_a, units_g = units_of(answer), units_of(gold)
        if (units_a and units_g and units_a == units_g) or gold_tail == tail:
            return False
    return True


def triage(answer: str, golds: Sequence[str]) -> tuple[bool | None, list[str]]:
    """The cheap verdict over all golds, and the golds it left undecided (the only ones a worker sees)."""
    if _units_contradict(answer, golds):
        return False, []
    undecided = []
    for gold in golds:
        verdict = gold_verdict(answer, gold)
        if verdict:
            return True, []
        if verdict is None:
            undecided.append(gold)
    return (None, undecided) if undecided else (False, [])


def cheap_verdict(answer: str, golds: Sequence[str]) -> bool | None:
    """True/False when string normalisation or exact numbers decide; None when a symbolic check is needed."""
    return triage(answer, golds)[0]


def symbolic_form(text: str) -> str:
    """What the worker parses: delimiters unwrapped, decimals as exact fractions (math-verify rounds floats)."""
    return decimals_as_fractions(trig_degrees_as_radians(strip_delimiters(text)))


_WRAPPED_TEXT = re.compile(r"\\(?:text|mathrm|textbf|mbox|operatorname)\b")
_BASED = re.compile(r"^\{?([0-9A-Za-z]+)\}?_\{?\(?(\d+)\)?\}?$")  # 52_8, 52_{8}, {52}_{8}, 63_{(8)}


def based_numbers_equal(answer: str, gold: str) -> bool | None:
    """Numbers written in a base (MATH's ``52_8``): same digits in the same base, or bare digits of the gold.

    The symbolic parser reads the subscript as decoration, so without this ``52_9`` would equal ``52_8``.
    """
    gold_match = _BASED.match(gold)
    if not gold_match or not _valid_in_base(gold_match.group(1), int(gold_match.group(2))):
        return None  # x_1 is a variable with an index, not digits in base 1
    answer_match = _BASED.match(answer)
    if answer_match:
        return answer_match.group(1).lower() == gold_match.group(1).lower() and int(answer_match.group(2)) == int(
            gold_match.group(2)
        )
    if answer.isalnum():
        return answer.lower() == gold_match.group(1).lower()
    return None


def _valid_in_base(digits: str, base: int) -> bool:
    try:
        return 2 <= base <= 36 and int(digits, base) >= 0
    except ValueError:
        return False


def needs_symbolic(answer: str) -> bool:
    return len(answer) <= MAX_SYMBOLIC_CHARS and not _SUSPICIOUS.search(answer)


class Verifier:
    """Grades (answer, gold) pairs: cached, cheap path first, symbolic checks batched across worker processes."""

    def __init__(self, pool: SymbolicPool | None = None, cache_size: int = 100_000) -> None:
        self._pool = pool
        self.cache: dict[tuple[str, tuple[str, ...]], bool] = {}
        self.cache_size = cache_size

    @property
    def pool(self) -> SymbolicPool:
        return self._pool or default_pool()

    def verify_batch(self, answers: Sequence[str | None], golds: Sequence[str | Iterable[str]]) -> list[bool]:
        """One verdict per answer (None answers are wrong), in order."""
        verdicts: list[bool | None] = [None] * len(answers)
        symbolic: dict[tuple[str, tuple[str, ...]], list[int]] = {}
        undecided_golds: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        for i, (answer, gold) in enumerate(zip(answers, golds, strict=True)):
            gold_list = _as_golds(gold)
            if answer is None or not answer.strip() or not gold_list:
                verdicts[i] = False
                continue
            key = (answer, tuple(gold_list))
            if key in self.cache:
                verdicts[i] = self.cache[key]
                continue
            verdict, undecided = triage(answer, gold_list)
            if verdict is None and not needs_symbolic(answer):
                verdict = False
            if verdict is None:
                symbolic.setdefault(key, []).append(i)
                undecided_golds[key] = undecided
            else:
                verdicts[i] = verdict
                self._remember(key, verdict)
        if symbolic:
            keys = list(symbolic)
            tasks = [(symbolic_form(k[0]), [symbolic_form(g) for g in undecided_golds[k]]) for k in keys]
            missed_before = self.pool.stats["timeouts"] + self.pool.stats["unavailable"]
            results = self.pool.map(tasks)
            # A check that timed out or found no worker says nothing about the answer: remember only verdicts
            # from a batch where every check finished (a busy machine must not fix a right answer at 0).
            complete = self.pool.stats["timeouts"] + self.pool.stats["unavailable"] == missed_before
            for key, verdict in zip(keys, results):
                if complete or verdict:
                    self._remember(key, verdict)
                for i in symbolic[key]:
                    verdicts[i] = verdict
        return [bool(v) for v in verdicts]

    def _remember(self, key: tuple[str, tuple[str, ...]], verdict: bool) -> None:
        if len(self.cache) >= self.cache_size:
            self.cache.clear()
        self.cache[key] = verdict


_VERIFIER: Verifier | None = None


def default_verifier() -> Verifier:
    global _VERIFIER
    if _VERIFIER is None:
        _VERIFIER = Verifier()
    return _VERIFIER


def is_equivalent(answer: str | None, gold: str | Iterable[str] | float | int) -> bool:
    """Whether ``answer`` (an extracted answer, not a whole completion) matches ``gold`` or any of several golds."""
    return default_verifier().verify_batch([answer], [gold])[0]
