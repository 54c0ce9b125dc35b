"""The reward as users call it: from a script without a main guard, `python -c`, stdin and a thread, with
the worker pool started as its own program and no training stack imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from notebook_kernel import execute_notebook

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}

# No `if __name__ == "__main__":`: every line below runs at import of __main__. A worker that re-imported the
# main module would print TOP LEVEL again and start its own pool.
SCRIPT = r'''
print("TOP LEVEL")
from fastcurl.rewards import accuracy_reward, default_verifier
scores = accuracy_reward(
    ["</think> \\boxed{\\sin^2(x)+\\cos^2(x)}", "</think> so \\boxed{\\sqrt{3}/2}", "</think> \\boxed{x^2}",
     "</think> \\boxed{\\sqrt{x^2}}"],  # a root of a variable: only the symbolic check may accept it
    [["1"], ["\\frac{\\sqrt{3}}{2}"], ["x^3"], ["|x|"]],
)
print("SCORES", scores)
'''


def run_user_code(tmp_path: Path, how: str) -> subprocess.CompletedProcess:
    if how == "script":
        (tmp_path / "train_quick.py").write_text(SCRIPT)
        command, stdin = [sys.executable, "train_quick.py"], None
    elif how == "-c":
        command, stdin = [sys.executable, "-c", SCRIPT], None
    elif how == "stdin":
        command, stdin = [sys.executable, "-"], SCRIPT
    else:  # the reward called from a thread that is not the main thread
        code = "import threading\ndef body():\n" + "".join(f"    {line}\n" for line in SCRIPT.splitlines()) + (
            "thread = threading.Thread(target=body)\nthread.start()\nthread.join()\n")
        command, stdin = [sys.executable, "-c", code], None
    return subprocess.run(command, input=stdin, capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300)


@pytest.mark.parametrize("how", ["script", "-c", "stdin", "thread"])
def test_guardless_user_code_runs_its_top_level_once_and_symbolic_answers_score(tmp_path, how):
    result = run_user_code(tmp_path, how)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("TOP LEVEL") == 1, result.stdout
    assert "SCORES [1.0, 1.0, 0.0, 1.0]" in result.stdout, result.stdout + result.stderr[-2000:]


def test_the_symbolic_path_is_what_decided(tmp_path):
    code = (
        "from fastcurl.rewards import default_verifier\n"
        "v = default_verifier()\n"
        "print(v.verify_batch(['\\\\sqrt{x^2}'], [['|x|']]), v.pool.stats['symbolic_checks'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=tmp_path,
                            timeout=300)
    assert result.stdout.split() == ["[True]", "1"], result.stdout + result.stderr[-2000:]


def test_importing_the_reward_and_data_modules_loads_no_training_stack():
    code = (
        "import sys, fastcurl, fastcurl.rewards, fastcurl.data, fastcurl.rewards.worker\n"
        "print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr[-2000:]


def test_workers_per_process_leave_room_for_every_rank(monkeypatch):
    from fastcurl.rewards.verify import default_num_workers

    cores = len(os.sched_getaffinity(0))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(cores))
    assert default_num_workers() == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert default_num_workers() == min(8, cores)


def test_the_reward_in_a_jupyter_kernel(tmp_path):
    """A notebook's __main__ is the kernel: workers that re-imported it could not start at all."""
    nbformat = pytest.importorskip("nbformat")
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SCRIPT)])
    execute_notebook(book, tmp_path, ENV, timeout=300)
    text = "".join(o.get("text", "") for o in book.cells[0].outputs)
    assert text.count("TOP LEVEL") == 1 and "SCORES [1.0, 1.0, 0.0, 1.0]" in text, text


def test_each_of_two_ranks_scores_with_its_share_of_the_cores(tmp_path):
    """Two `accelerate`-style ranks on one node: each runs its own pool, together within the cores."""
    code = SCRIPT + "from fastcurl.rewards import default_pool\nprint('WORKERS', default_pool().num_workers)\n"
    ranks = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=tmp_path, env={**ENV, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2",
                                                 "LOCAL_WORLD_SIZE": "2"})
             for r in range(2)]
    cores = len(os.sched_getaffinity(0))
    for rank in ranks:
        out, err = rank.communicate(timeout=300)
        assert rank.returncode == 0, err[-2000:]
        assert out.count("TOP LEVEL") == 1 and "SCORES [1.0, 1.0, 0.0, 1.0]" in out, out + err[-2000:]
        assert f"WORKERS {max(1, cores // 2)}" in out
