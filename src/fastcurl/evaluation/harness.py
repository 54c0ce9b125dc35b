"""``fastcurl eval``: pass@1 over k samples per problem on the five benchmarks, the way FastCuRL reports it.

Every sample is written to ``samples.jsonl`` as soon as its prompt is graded (prompt id, completion, extracted
answer, verdict, length), so a run can be re-graded without regenerating and an interrupted run resumes without
redoing finished prompts. ``results.json`` and the printed table are computed from that file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datasets import Dataset

from ..data import DataError, load_math_dataset
from ..run.atomic import write_text_atomic
from ..rewards import extract_answer
from ..rewards.extract import ThinkPolicy
from ..rewards.verify import default_verifier
from .metrics import summarize

# Benchmark name -> file name in a FastCuRL test directory (verl parquet).
BENCHMARK_FILES = {
    "aime2024": "aime2024.parquet",
    "math500": "math.parquet",
    "amc2023": "amc2023.parquet",
    "minerva": "minerva.parquet",
    "olympiadbench": "olympiadbench.parquet",
}


def load_benchmark(name: str, data_dir: str | Path | None, limit: int | None = None) -> Dataset:
    """A benchmark from ``data_dir`` (its FastCuRL file name, or ``<name>.parquet/.jsonl``), or a Hub id."""
    candidates = []
    if data_dir is not None:
        root = Path(data_dir)
        candidates = [root / BENCHMARK_FILES.get(name, ""), root / f"{name}.parquet", root / f"{name}.jsonl"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None and Path(name).is_file():
        path = Path(name)
    if path is not None:
        dataset = load_math_dataset(path)
    elif "/" in name:
        dataset = load_math_dataset(name, split="test")  # a Hub dataset id
    else:
        known = ", ".join(BENCHMARK_FILES)
        raise DataError(
            f"benchmark '{name}': "
            + (f"no file for it in {data_dir}" if data_dir else "no benchmark directory given (--data_dir, or "
               "eval_data_dir in a recipe)")
            + f". Known names: {known}; or pass a file path or a Hub dataset id, and --data_dir pointing at a "
            "directory of benchmark files."
        )
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return dataset


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of a samples file; a last line cut off by a crash is ignored."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def grade(records: list[dict[str, Any]], think: ThinkPolicy = "auto") -> list[dict[str, Any]]:
    """Extract and verify every record's answer in place (one batch through the reward's verifier)."""
    answers = [extract_answer(r["completion"], think) for r in records]
    verdicts = default_verifier().verify_batch(answers, [r["ground_truth"] for r in records])
    for record, answer, verdict in zip(records, answers, verdicts):
        record["answer"], record["correct"] = answer, bool(verdict)
    return records


def results_by_benchmark(records: list[dict[str, Any]]) -> dict[str, Any]:
    names = list(dict.fromkeys(r["benchmark"] for r in records))
    results = {name: summarize([r for r in records if r["benchmark"] == name]) for name in names}
    scored = [v["pass@1"] for v in results.values() if v.get("pass@1") is not None]
    results["average"] = {"pass@1": sum(scored) / len(scored) if scored else None, "benchmarks": len(scored)}
    return results


def format_table(results: dict[str, Any]) -> str:
    names = [n for n in results if n != "average" and not n.startswith("_")]
    header = ["benchmark", "prompts", "samples", "pass@1", "mean len", "len correct", "len wrong", "wait/resp"]
    rows = []

    def fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
        return "-" if value is None else f"{value * scale:.{digits}f}"

    for name in names:
        r = results[name]
        rows.append([name, str(r["prompts"]), str(r["samples"]), fmt(r["pass@1"], 100), fmt(r["mean_length"], 1, 0),
                     fmt(r["mean_length_correct"], 1, 0), fmt(r["mean_length_incorrect"], 1, 0),
                     fmt(r["wait_per_response"], 1, 2)])
    rows.append(["average", "", "", fmt(results["average"]["pass@1"], 100), "", "", "", ""])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def evaluate(
    backend: Any,
    benchmarks: dict[str, Dataset],
    out_dir: str | Path,
    samples: int,
    think: ThinkPolicy = "auto",
    progress: bool = True,
    on_prompt_done: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Generate ``samples`` completions per prompt, grade them, append them to ``samples.jsonl``, summarise.

    Prompts already complete in ``samples.jsonl`` (same benchmark, prompt id and sample count) are skipped.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    samples_path = out / "samples.jsonl"
    existing = read_records(samples_path)
    counts: dict[tuple[str, int], int] = {}
    for record in existing:
        key = (record["benchmark"], record["prompt_id"])
        counts[key] = counts.get(key, 0) + 1
    done = {key for key, count in counts.items() if count >= samples}
    kept = "".join(json.dumps(r) + "\n" for r in existing if (r["benchmark"], r["prompt_id"]) in done)
    if samples_path.exists() and samples_path.read_text(encoding="utf-8") != kept:
        # Partial prompts (generated again, whole) and a line a kill cut short go, before anything is appended.
        write_text_atomic(samples_path, kept)
    todo = [(name, i) for name, data in benchmarks.items() for i in range(len(data)) if (name, i) not in done]
    total = sum(len(d) for d in benchmarks.values())
    print(f"[fastcurl] eval: {total} prompts x {samples} samples; {total - len(todo)} done before, "
          f"{len(todo)} to generate", flush=True)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="eval prompts", unit="prompt")
    step = backend.prompts_per_call(samples)
    started = time.monotonic()
    with samples_path.open("a", encoding="utf-8") as sink:
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            rows = [benchmarks[name][i] for name, i in chunk]
            outputs = backend.generate([row["prompt"] for row in rows], samples)
            records = []
            for (name, i), row, prompt_samples in zip(chunk, rows, outputs):
                for k, (text, length, finish) in enumerate(prompt_samples):
                    records.append({"benchmark": name, "prompt_id": i, "sample": k, "completion": text,
                                    "ground_truth": list(row["ground_truth"]), "length": length, "finish": finish})
            grade(records, think)
            sink.write("".join(json.dumps(r) + "\n" for r in records))
            sink.flush()
            if bar is not None:
                bar.update(len(chunk))
            if on_prompt_done is not None:
                on_prompt_done(start + len(chunk))
    if bar is not None:
        bar.close()
    results = results_by_benchmark(read_records(samples_path))
    results["_run"] = {"generated_prompts": len(todo), "seconds": round(time.monotonic() - started, 2)}
    write_text_atomic(out / "results.json", json.dumps(results, indent=2))
    return results


def regrade(samples_path: str | Path, think: ThinkPolicy = "auto") -> dict[str, Any]:
    """Grade a samples file again (a new verifier, another think policy) without generating anything."""
    records = grade(read_records(Path(samples_path)), think)
    return results_by_benchmark(records)
