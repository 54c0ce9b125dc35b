"""A reward for subprocess tests: scores like the real one and records what each update drew.

``FASTCURL_TEST_RECORD`` names a JSONL file that gets, per reward call, the global step, the prompts, the
completion lengths and the scores. ``FASTCURL_TEST_SIGTERM_AT=N`` sends SIGTERM to this process during update N.
``FASTCURL_TEST_REWARD_SLEEP=S`` makes each call take S seconds longer; ``FASTCURL_TEST_HANG_AT=N`` hangs in update N (and writes ``<record>.hanging``). Importing it also arms ``fault_injection`` (``FASTCURL_FAULT``).
"""

from __future__ import annotations

import json
import os
import signal
import time

import fault_injection  # noqa: F401 (arms FASTCURL_FAULT in this process)
from fastcurl.rewards import plain_accuracy_reward


def recorded_reward(prompts, completions, completion_ids, trainer_state, **kwargs):
    scores = [float(len(ids) % 2) for ids in completion_ids]  # varied, so groups are not flat
    step = trainer_state.global_step + 1
    path = os.environ.get("FASTCURL_TEST_RECORD")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"step": step, "prompts": [p[-1]["content"] for p in prompts],
                                "lengths": [len(ids) for ids in completion_ids], "scores": scores}) + "\n")
    time.sleep(float(os.environ.get("FASTCURL_TEST_REWARD_SLEEP", "0")))
    if os.environ.get("FASTCURL_TEST_HANG_AT") == str(step):
        if path:
            with open(path + ".hanging", "w") as f:
                f.write(str(step))
        time.sleep(100_000)  # a reward stuck on a dead server
    if os.environ.get("FASTCURL_TEST_SIGTERM_AT") == str(step):
        os.kill(os.getpid(), signal.SIGTERM)
    plain_accuracy_reward(completions, kwargs["ground_truth"])  # exercise the real verifier too
    return scores


def solving_reward(prompts, completions, trainer_state, **kwargs):
    """Every rollout right for the prompts whose text has an even length, alternating otherwise; records per call
    (``FASTCURL_TEST_RECORD``) the step and the prompts."""
    texts = [p[-1]["content"] for p in prompts]
    path = os.environ.get("FASTCURL_TEST_RECORD")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"step": trainer_state.global_step + 1, "prompts": texts}) + "\n")
    time.sleep(float(os.environ.get("FASTCURL_TEST_REWARD_SLEEP", "0")))
    return [1.0 if len(text) % 2 == 0 else float(i % 2) for i, text in enumerate(texts)]


def _hangs_now(trainer_state) -> bool:
    if os.environ.get("FASTCURL_TEST_HANG_AT") != str(trainer_state.global_step + 1):
        return False
    path = os.environ.get("FASTCURL_TEST_RECORD")
    if path:
        with open(path + ".hanging", "w") as f:
            f.write(str(trainer_state.global_step + 1))
    return True


def alarm_hang_reward(completion_ids, trainer_state, **kwargs):
    """What math-verify's timeout decorator does around each check (signal.alarm), then a hang."""
    previous = signal.signal(signal.SIGALRM, lambda *args: None)
    signal.alarm(5)
    signal.alarm(0)  # cancels the process's one alarm timer, the reward deadline's too
    signal.signal(signal.SIGALRM, previous)
    if _hangs_now(trainer_state):
        time.sleep(100_000)
    return [float(len(ids) % 2) for ids in completion_ids]


def c_hang_reward(completion_ids, trainer_state, **kwargs):
    """A hang inside C code that never returns to the interpreter (a verifier expanding 10^(10^10), say)."""
    if _hangs_now(trainer_state):
        sum(range(10**15))
    return [float(len(ids) % 2) for ids in completion_ids]


async def async_hang_reward(completion_ids, trainer_state, **kwargs):
    """An async reward (TRL runs them on its event loop) waiting on a server that never answers."""
    import asyncio

    if _hangs_now(trainer_state):
        await asyncio.sleep(100_000)
    return [float(len(ids) % 2) for ids in completion_ids]
