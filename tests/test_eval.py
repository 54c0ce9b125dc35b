"""`fastcurl eval`: pass@k, the table/JSON/JSONL it writes, re-grading, and resuming an interrupted run."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastcurl.evaluation import count_wait, pass_at_k, read_records, regrade, summarize

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("n", "c"), [(1, 0), (1, 1), (4, 1), (5, 2), (6, 3), (8, 0), (8, 8), (7, 6)])
def test_pass_at_k_matches_brute_force(n, c):
    outcomes = [True] * c + [False] * (n - c)
    for k in range(1, n + 1):
        subsets = list(itertools.combinations(range(n), k))
        brute = sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)
        assert pass_at_k(n, c, k) == pytest.approx(brute)


def test_summarize_lengths_wait_and_pass_at_1():
    records = [
        {"prompt_id": 0, "correct": True, "length": 10, "completion": "Wait, wait. ok"},
        {"prompt_id": 0, "correct": False, "length": 30, "completion": "no"},
        {"prompt_id": 1, "correct": False, "length": 20, "completion": "await nothing"},
        {"prompt_id": 1, "correct": False, "length": 40, "completion": "WAIT"},
    ]
    s = summarize(records)
    assert s["pass@1"] == pytest.approx(0.25) and s["pass@2"] == pytest.approx(0.5)
    assert s["mean_length"] == 25 and s["mean_length_correct"] == 10 and s["mean_length_incorrect"] == 30
    assert count_wait("await Wait wait.") == 2 and s["wait_per_response"] == pytest.approx(0.75)


def test_regrade_of_written_samples(tmp_path):
    path = tmp_path / "samples.jsonl"
    rows = []
    for prompt_id, gold in enumerate(["025", "\\frac{1}{2}"]):
        for k, completion in enumerate([f"</think> \\boxed{{{gold}}}", "</think> \\boxed{7}",
                                        "<think> \\boxed{%s}" % gold, "</think> \\boxed{0.5}"]):
            rows.append({"benchmark": "b", "prompt_id": prompt_id, "sample": k, "completion": completion,
                         "ground_truth": [gold], "length": 5, "finish": "stop"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    results = regrade(path)
    # prompt 0: only the exact boxed gold counts (25 vs 0.5 no); prompt 1: \frac{1}{2} and 0.5 both count
    assert results["b"]["pass@1"] == pytest.approx((1 / 4 + 2 / 4) / 2)
    assert regrade(path, think="none")["b"]["pass@1"] == pytest.approx((2 / 4 + 3 / 4) / 2)


def _eval(tiny_model_path, data_dir, out, *extra):
    return subprocess.run(
        [sys.executable, "-m", "fastcurl.cli", "eval", "--model", tiny_model_path, "--benchmarks",
         "aime2024,amc2023", "--data_dir", str(data_dir), "--samples", "4", "--max_tokens", "12", "--limit", "3",
         "--out", str(out), "--backend", "transformers", *extra],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )


def test_eval_cli_table_json_jsonl_and_regrade(tiny_model_path, sample_data, tmp_path):
    out = tmp_path / "eval"
    result = _eval(tiny_model_path, sample_data / "test", out)
    assert result.returncode == 0, result.stderr[-3000:]
    records = read_records(out / "samples.jsonl")
    assert len(records) == 2 * 3 * 4
    assert {(r["benchmark"], r["prompt_id"]) for r in records} == {(b, i) for b in ("aime2024", "amc2023")
                                                                   for i in range(3)}
    assert all(0 < r["length"] <= 12 and r["finish"] in ("stop", "length") for r in records)
    assert records[0]["ground_truth"] and "answer" in records[0] and "correct" in records[0]
    results = json.loads((out / "results.json").read_text())
    for name in ("aime2024", "amc2023"):
        assert results[name]["prompts"] == 3 and results[name]["samples"] == 12
        assert results[name]["pass@1"] == summarize([r for r in records if r["benchmark"] == name])["pass@1"]
        assert "pass@4" in results[name]
    assert "aime2024" in result.stdout and "average" in result.stdout  # the printed table
    again = subprocess.run(
        [sys.executable, "-m", "fastcurl.cli", "eval", "--regrade", str(out / "samples.jsonl")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert again.returncode == 0, again.stderr[-2000:]
    regraded = json.loads((out / "results_regraded.json").read_text())
    assert {k: v for k, v in regraded.items()} == {k: v for k, v in results.items() if k != "_run"}


def test_interrupted_eval_resumes_without_duplicates(tiny_model_path, sample_data, tmp_path):
    out = tmp_path / "eval"
    assert _eval(tiny_model_path, sample_data / "test", out).returncode == 0
    lines = (out / "samples.jsonl").read_text().splitlines(keepends=True)
    # A crash mid-write: the first prompt complete, the second half written, the last line cut off.
    (out / "samples.jsonl").write_text("".join(lines[:6]) + lines[6][: len(lines[6]) // 2])
    resumed = _eval(tiny_model_path, sample_data / "test", out)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "1 done before, 5 to generate" in resumed.stdout
    records = read_records(out / "samples.jsonl")
    keys = [(r["benchmark"], r["prompt_id"], r["sample"]) for r in records]
    assert len(keys) == len(set(keys)) == 24
    # Cut inside the first line of a prompt (every earlier prompt whole): the cut line must go before appending.
    lines = (out / "samples.jsonl").read_text().splitlines(keepends=True)
    (out / "samples.jsonl").write_text("".join(lines[:8]) + lines[8][:10])
    resumed = _eval(tiny_model_path, sample_data / "test", out)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "2 done before, 4 to generate" in resumed.stdout
    text = (out / "samples.jsonl").read_text()
    assert len(text.splitlines()) == len(read_records(out / "samples.jsonl")) == 24  # no line glued to a cut one
    summary = json.loads((out / "results.json").read_text())
    assert sum(summary[b]["samples"] for b in ("aime2024", "amc2023")) == 24  # every sample counted


def test_eval_errors_before_loading_a_model(tmp_path):
    bad = subprocess.run(
        [sys.executable, "-m", "fastcurl.cli", "eval", "--model", "/nonexistent", "--benchmarks", "nosuch",
         "--data_dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert bad.returncode != 0 and "benchmark 'nosuch'" in bad.stderr and "Known names" in bad.stderr


def test_data_parallel_workers_keep_prompts_in_order(tiny_model_path, sample_data, tmp_path):
    """Two model copies in two processes: every sample lands on its own prompt, none lost or duplicated."""
    from fastcurl.evaluation import load_benchmark

    out = tmp_path / "dp"
    result = _eval(tiny_model_path, sample_data / "test", out, "--data_parallel", "2", "--batch_size", "8")
    assert result.returncode == 0, result.stderr[-3000:]
    records = read_records(out / "samples.jsonl")
    assert len({(r["benchmark"], r["prompt_id"], r["sample"]) for r in records}) == len(records) == 24
    for name in ("aime2024", "amc2023"):
        golds = load_benchmark(name, sample_data / "test", limit=3)["ground_truth"]
        for r in records:
            if r["benchmark"] == name:
                assert r["ground_truth"] == golds[r["prompt_id"]]
