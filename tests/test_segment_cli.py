"""`fastcurl segment` and the contamination check, on real rows of the FastCuRL files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasets import Dataset

from fastcurl.data import (
    add_instruction,
    load_math_dataset,
    make_synthetic_math,
    problem_text,
    segment_by_prompt_length,
)
from fastcurl.data.contamination import find_contamination, normalize_problem


def _rows(dataset: Dataset, indices) -> Dataset:
    return dataset.select(list(indices))


def test_contamination_finds_planted_duplicates_in_real_rows(sample_data, tmp_path):
    train = load_math_dataset(sample_data / "train" / "train_L1.parquet", max_samples=300)
    math500 = load_math_dataset(sample_data / "test" / "math.parquet")
    aime = load_math_dataset(sample_data / "test" / "aime2024.parquet")
    evals = {"math500": math500, "aime2024": aime}
    baseline = {(m.train_index, m.benchmark, m.eval_index) for m in find_contamination(train, evals)}

    prompts = list(train["prompt"])
    truths = list(train["ground_truth"])

    def plant(row: int, text: str) -> None:
        prompts[row] = [{"role": "user", "content": add_instruction(text)}]

    def problem(dataset: Dataset, row: int) -> str:
        return problem_text(dataset[row]["prompt"])

    exact_aime = problem(aime, 3)
    plant(10, exact_aime.replace(" ", "  ").replace("$", ""))  # spacing and delimiters differ
    exact_math = problem(math500, 40)
    plant(20, exact_math.replace("\\frac", "\\dfrac").upper())  # \dfrac and case differ
    near = problem(aime, 7).split(" ")
    near[len(near) // 2] = "seventeen"  # one word changed in the middle
    plant(30, " ".join(near))
    unrelated = problem_text(make_synthetic_math(1, seed=5)[0]["prompt"])
    plant(40, unrelated)

    planted = Dataset.from_dict({"prompt": prompts, "ground_truth": truths})
    found = {(m.train_index, m.benchmark, m.eval_index): m for m in find_contamination(planted, evals)}
    new = {key: m for key, m in found.items() if key not in baseline}
    assert set(new) == {(10, "aime2024", 3), (20, "math500", 40), (30, "aime2024", 7)}
    assert new[(10, "aime2024", 3)].kind == "exact" and new[(20, "math500", 40)].kind == "exact"
    assert new[(30, "aime2024", 7)].kind == "near" and 0.7 < new[(30, "aime2024", 7)].overlap < 1
    assert not any(m.train_index == 40 for m in found.values())


def test_normalize_problem_ignores_latex_spacing_only():
    assert normalize_problem("Find $x$ if \\left( x \\right)\\,=\\;\\dfrac{1}{2}") == normalize_problem(
        "find x if ( x ) = \\frac{1}{2}"
    )
    assert normalize_problem("Find x = 1/2") != normalize_problem("Find x = 1/3")


def test_segment_cli_writes_segments_stats_histogram_and_contamination(sample_data, tmp_path):
    source = tmp_path / "train.parquet"
    table = pq.read_table(sample_data / "train" / "train_L2.parquet").slice(0, 2000)
    pq.write_table(table, source)
    aime = tmp_path / "eval"
    aime.mkdir()
    pq.write_table(pq.read_table(sample_data / "test" / "aime2024.parquet"), aime / "aime2024.parquet")
    # Leak one AIME problem into the training file to see it reported.
    rows = table.to_pylist()
    rows[5]["prompt"] = pq.read_table(aime / "aime2024.parquet").to_pylist()[0]["prompt"]
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), source)

    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "fastcurl.cli", "segment", str(source), "--out", str(out), "--eval", str(aime)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    stats = json.loads((out / "stats.json").read_text())
    expected = segment_by_prompt_length(load_math_dataset(source))
    for name in ("L1", "L2", "L3"):
        segment = load_math_dataset(out / f"{name}.parquet")
        assert len(segment) == stats["segments"][name]["count"] == len(expected[name])
        assert segment["ground_truth"] == expected[name]["ground_truth"]
        assert segment[0]["prompt"][-1]["content"].count("\\boxed{}") == 1
    assert stats["thresholds"] == pytest.approx([float(np.mean(expected.lengths))])
    assert stats["segments"]["L1"]["p50"] <= stats["thresholds"][0] < stats["segments"]["L3"]["p50"]
    assert (out / "length_histogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "contamination.json").read_text())
    assert [(m["train_index"], m["kind"]) for m in report["matches"]] == [(5, "exact")]
    assert "1 training problems match aime2024" in result.stdout


def test_segment_cli_quantiles_and_errors(tmp_path):
    source = tmp_path / "problems.jsonl"
    rows = make_synthetic_math(120, seed=3)
    source.write_text("\n".join(json.dumps({"question": r["prompt"][0]["content"], "ans": r["ground_truth"][0]})
                                for r in rows))
    out = tmp_path / "q"
    command = [sys.executable, "-m", "fastcurl.cli", "segment", str(source), "--out", str(out)]
    result = subprocess.run(command + ["--num_segments", "4", "--problem_column", "question",
                                       "--answer_column", "ans"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    stats = json.loads((out / "stats.json").read_text())
    counts = [stats["segments"][f"Q{i}"]["count"] for i in range(1, 5)]
    assert sum(counts) == stats["segments"]["all"]["count"] == 120 and len(stats["thresholds"]) == 3
    means = [stats["segments"][f"Q{i}"]["mean_length"] for i in range(1, 5)]
    assert means == sorted(means)

    missing_column = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert missing_column.returncode != 0 and "no answer column" in missing_column.stderr
    missing_eval = subprocess.run(command + ["--problem_column", "question", "--answer_column", "ans",
                                             "--eval", str(tmp_path / "nowhere")],
                                  capture_output=True, text=True, timeout=120)
    assert missing_eval.returncode == 2 and "nowhere: no such file" in missing_eval.stderr


def test_token_lengths_option(tiny_model_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    data = make_synthetic_math(80, seed=2)
    split = segment_by_prompt_length(data, tokenizer=tokenizer)
    assert split.unit == "tokens"
    first = data[0]["prompt"][0]["content"]
    assert split.lengths[0] == len(tokenizer(problem_text(first), add_special_tokens=False)["input_ids"])
    assert len(split["L1"]) + len(split["L3"]) == 80
