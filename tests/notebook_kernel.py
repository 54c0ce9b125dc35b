"""Running a notebook in a real Jupyter kernel, for the notebook and reward tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def execute_notebook(book, cwd: Path, env: dict[str, str], timeout: int) -> None:
    """Run a notebook in a real Jupyter kernel in ``cwd``, the kernel started with ``env`` in the environment."""
    nbclient = pytest.importorskip("nbclient")
    old = dict(os.environ)
    os.environ.update(env)
    try:
        nbclient.NotebookClient(book, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(cwd)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
