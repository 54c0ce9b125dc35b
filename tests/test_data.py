"""Loading, segmentation and the built-in data, on the real FastCuRL files."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from fastcurl.data import (
    INSTRUCTION,
    DataError,
    add_instruction,
    load_math_dataset,
    make_synthetic_math,
    segment_by_prompt_length,
)


def test_reproduces_fastcurl_split_exactly(shared_data):
    dataset = load_math_dataset(shared_data / "train" / "train_L2.parquet")
    assert len(dataset) == 40315
    split = segment_by_prompt_length(dataset)
    assert len(split["L1"]) == 24976 and len(split["L3"]) == 15339 and len(split["L2"]) == 40315
    stats = split.stats()["segments"]
    assert round(stats["L1"]["mean_length"], 2) == 148.65
    assert round(stats["L2"]["mean_length"], 2) == 247.24
    assert round(stats["L3"]["mean_length"], 2) == 407.78
    for name in ("L1", "L3"):
        published = {e["index"] for e in pq.read_table(shared_data / "train" / f"train_{name}.parquet")
                     .column("extra_info").to_pylist()}
        ours = {e["index"] for e in split[name]["extra_info"]}
        assert ours == published


def test_verl_ground_truth_shapes(sample_data):
    aime = load_math_dataset(sample_data / "test" / "aime2024.parquet")
    assert len(aime) == 30 and all(len(g) == 1 for g in aime["ground_truth"])
    assert any(g[0].startswith("0") for g in aime["ground_truth"])  # leading zeros kept, e.g. 025
    amc = load_math_dataset(sample_data / "test" / "amc2023.parquet")
    assert amc[0]["ground_truth"] == ["142"]
    minerva = load_math_dataset(sample_data / "test" / "minerva.parquet")
    several = [g for g in minerva["ground_truth"] if len(g) > 1]
    assert len(several) == 75
    assert all(a == a.strip() for g in minerva["ground_truth"] for a in g)
    olympiad = load_math_dataset(sample_data / "test" / "olympiadbench.parquet")
    assert not any(a.startswith("$") for g in olympiad["ground_truth"] for a in g)
    for row in aime:
        assert row["prompt"][-1]["content"].endswith(INSTRUCTION)
        assert row["prompt"][-1]["content"].count(INSTRUCTION) == 1


def test_plain_files_with_custom_columns(tmp_path):
    rows = [{"q": "What is two plus two?", "a": 4}, {"q": "Half of ten?", "a": "5"}]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    ds = load_math_dataset(tmp_path / "p.jsonl", problem_column="q", answer_column="a")
    assert ds["ground_truth"] == [["4"], ["5"]]
    assert ds[0]["prompt"] == [{"role": "user", "content": "What is two plus two? " + INSTRUCTION}]
    (tmp_path / "p.csv").write_text("problem,answer\nOne plus one?,2\n")
    assert load_math_dataset(tmp_path / "p.csv")["ground_truth"] == [["2"]]
    ds.to_parquet(tmp_path / "p.parquet")
    again = load_math_dataset(tmp_path / "p.parquet", instruction=INSTRUCTION)
    assert again[0]["prompt"][-1]["content"].count(INSTRUCTION) == 1  # never doubled
    assert add_instruction("x " + INSTRUCTION) == "x " + INSTRUCTION


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        ("", {}, r"p\.jsonl: the file is empty"),
        ('{"problem": "x"}', {}, r"no answer column"),
        ('{"answer": "1"}', {}, r"no problem column"),
        ('{"problem": "x", "answer": null}', {}, r"row 0, column 'answer': the answer is missing"),
        ('{"problem": "x", "answer": true}', {}, r"row 0, column 'answer': the answer is a boolean"),
        ("not json", {}, r"cannot be read as json"),
    ],
)
def test_loader_errors_name_file_row_and_column(tmp_path, content, kwargs, message):
    path = tmp_path / "p.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_math_dataset(path, **kwargs)


def test_missing_file_and_hub_errors(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="file not found"):
        load_math_dataset(tmp_path / "missing.parquet")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="Hub is unreachable.*local file"):
        load_math_dataset("some-org/some-dataset")


def test_synthetic_is_deterministic_and_harder_means_longer():
    a, b = make_synthetic_math(200, seed=7), make_synthetic_math(200, seed=7)
    assert a["prompt"] == b["prompt"] and a["ground_truth"] == b["ground_truth"]
    assert make_synthetic_math(200, seed=8)["prompt"] != a["prompt"]
    by_difficulty = {}
    for row in a:
        by_difficulty.setdefault(row["difficulty"], []).append(len(row["prompt"][0]["content"]))
    means = [sum(v) / len(v) for _, v in sorted(by_difficulty.items())]
    assert means == sorted(means)
    split = segment_by_prompt_length(a)
    assert sum(split["L1"]["difficulty"]) / len(split["L1"]) < sum(split["L3"]["difficulty"]) / len(split["L3"])
