"""Errors the ``fastcurl`` command shows as one ``fastcurl <verb>: error: ...`` line."""

from __future__ import annotations


class RunInputError(ValueError):
    """Bad input that shows only once the run has started: a checkpoint trained under another recipe, ranks that
    loaded different data, a stage left with too few prompts. Like a bad recipe it is the user's to fix, so the
    CLI shows one line; any other ``ValueError`` raised during training (a reward, TRL, torch) keeps its
    traceback."""


class MissingRunFileError(RunInputError, FileNotFoundError):
    """A file the resumed run needs is missing (a stage's saved policy, a checkpoint)."""
