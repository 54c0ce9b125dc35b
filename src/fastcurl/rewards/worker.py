"""The symbolic-check worker: its own program, ``python -m fastcurl.rewards.worker``, spoken to over pipes.

Started as a program rather than a ``multiprocessing`` child, it never imports the user's ``__main__``: a
training script without ``if __name__ == "__main__":`` runs its top level once, not once per worker, and code
piped to ``python`` or typed into Jupyter works the same. It imports math-verify and nothing of the training
stack, so it starts in about two seconds.

Protocol, one JSON document per line: the worker writes ``"ready"`` once it has built the parser, then answers
each request ``[answer, [gold, ...]]`` with ``true`` or ``false``. End of input ends it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence


def symbolic_equal(answer: str, golds: Sequence[str]) -> bool:
    """Parse the LaTeX answer and golds with math-verify (an ANTLR grammar building sympy) and compare them."""
    from math_verify import LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False)]
    parsed_answer = parse(f"\\boxed{{{answer}}}", extraction_config=config, parsing_timeout=None)
    if not parsed_answer:
        return False
    for gold in golds:
        parsed_gold = parse(f"\\boxed{{{gold}}}", extraction_config=config, parsing_timeout=None)
        if parsed_gold and verify(parsed_gold, parsed_answer, timeout_seconds=None):
            return True
    return False


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)  # it warns that we own the timeouts: we do
    out = sys.stdout
    sys.stdout = sys.stderr  # anything a library prints must not corrupt the protocol
    symbolic_equal("x+1", ["1+x"])  # imports and builds the parser before "ready": not on a check's deadline
    out.write('"ready"\n')
    out.flush()
    for line in sys.stdin:
        try:
            answer, golds = json.loads(line)
            verdict = symbolic_equal(str(answer), [str(g) for g in golds])
        except Exception:
            verdict = False
        out.write("true\n" if verdict else "false\n")
        out.flush()


if __name__ == "__main__":
    main()
