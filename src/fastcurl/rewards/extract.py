"""Find the answer a completion commits to: the last ``\\boxed{}`` in its answer region.

The answer region is the text after the last ``</think>``. R1-distilled chat templates put ``<think>`` in the
prompt, so completions often hold only the closing tag; a completion cut off inside its think block has no
answer region. Everything here is linear in the completion's length: completions are untrusted and may be
megabytes long.
"""

from __future__ import annotations

from typing import Literal

ThinkPolicy = Literal["auto", "required", "none"]
BOX_COMMANDS = ("\\boxed", "\\fbox")
MAX_ANSWER_CHARS = 2000
MAX_BOX_ATTEMPTS = 64  # a completion whose last 64 boxes are all broken has no answer worth hunting for


def answer_region(text: str, think: ThinkPolicy = "auto") -> str | None:
    """The part of ``text`` that may hold the final answer, or None when there is none.

    ``auto``: after the last ``</think>`` if there is one; None if a ``<think>`` is left open; else the whole text.
    ``required``: after the last ``</think>``, None without one. ``none``: the whole text (models that do not think
    in tags).
    """
    if think == "none":
        return text
    close = text.rfind("</think>")
    if close >= 0:
        return text[close + len("</think>") :]
    if think == "required" or "<think>" in text:
        return None
    return text


def _read_group(text: str, start: int) -> tuple[str, int] | None:
    """Content of the brace group opening at ``text[start] == '{'`` and the index after it."""
    depth = 0
    for i in range(start, min(len(text), start + MAX_ANSWER_CHARS + 2)):
        c = text[i]
        if c == "\\":
            continue
        if c == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif c == "}" and (i == 0 or text[i - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}``, ``\\boxed x`` or ``\\fbox{...}`` in ``text``.

    An unclosed ``\\boxed{`` does not count. Nested braces are kept whole.
    """
    end = len(text)
    for _ in range(MAX_BOX_ATTEMPTS):
        pos = max(text.rfind(cmd, 0, end) for cmd in BOX_COMMANDS)
        if pos < 0:
            return None
        cmd = next(c for c in BOX_COMMANDS if text.startswith(c, pos))
        after = pos + len(cmd)
        rest = text[after : after + 1]
        if rest == "{":
            group = _read_group(text, after)
            if group is not None:
                return group[0].strip()
        elif rest == " ":
            token = text[after + 1 :].lstrip(" ")
            word = token.split(maxsplit=1)[0] if token.strip() else ""
            word = word.rstrip(".,;$")
            if word:
                return word
        end = pos
    return None


def extract_answer(completion: str, think: ThinkPolicy = "auto") -> str | None:
    """The completion's final answer: the last boxed expression in its answer region, or None."""
    region = answer_region(completion, think)
    if region is None:
        return None
    return last_boxed(region)
