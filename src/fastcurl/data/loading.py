"""Turn math problem sets into the trainer's format: a conversational ``prompt`` and a ``ground_truth`` column.

Sources: verl/FastCuRL parquet (``prompt`` chat messages, ``reward_model.ground_truth``), plain problem/answer
files (JSONL, JSON, CSV, parquet) and Hub dataset ids. Extra columns are kept. Nothing here knows the trainer:
the tokenizer for the prompt-length filter comes in as an argument.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
from datasets import Dataset

logger = logging.getLogger(__name__)

INSTRUCTION = "Let's think step by step and output the final answer within \\boxed{}."
FILE_SUFFIXES = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}


class DataError(ValueError):
    """A data source that cannot become training data; the message names the file, row and column."""


class HubDatasetError(DataError):
    """A Hub dataset that could not be loaded (offline, or a wrong id): ``fastcurl plan`` plans without its size."""


def add_instruction(problem: str, instruction: str | None = INSTRUCTION) -> str:
    """Append the instruction once, separated by a space; a problem that already ends with it is left alone."""
    if not instruction:
        return problem
    problem = problem.rstrip()
    if problem.endswith(instruction):
        return problem
    return f"{problem} {instruction}"


def normalize_ground_truth(value: Any, where: str) -> list[str]:
    """Every acceptable answer as a stripped string: strings, numbers and arrays of either occur in real sets.

    AIME's leading zeros (``025``) are kept; AMC's floats (``142.0``) become ``142``; Minerva's trailing newlines
    and OlympiadBench's ``$...$`` wrappers are removed. Raises DataError naming ``where`` for unusable shapes.
    """
    if value is None:
        raise DataError(f"{where}: the answer is missing (null).")
    if isinstance(value, bool):
        raise DataError(f"{where}: the answer is a boolean ({value}), not a math answer.")
    if isinstance(value, int):
        return [str(value)]
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DataError(f"{where}: the answer is {value}, not a usable number.")
        return [str(int(value)) if value.is_integer() else repr(value)]
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("$") and text.endswith("$."):  # OlympiadBench ends one answer with a period
            text = text[:-1]
        if len(text) >= 2 and text.startswith("$") and text.endswith("$"):
            text = text.strip("$").strip()
        return [text] if text else []
    if isinstance(value, dict):
        raise DataError(f"{where}: the answer is a mapping {value!r}; point answer_column at the answer inside it.")
    if isinstance(value, Sequence) or hasattr(value, "tolist"):
        items = value.tolist() if hasattr(value, "tolist") else list(value)
        return [a for item in items for a in normalize_ground_truth(item, where)]
    raise DataError(f"{where}: the answer has type {type(value).__name__} ({value!r}); expected a string or number.")


def _read_table(path: Path) -> Dataset:
    kind = FILE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unsupported file type '{path.suffix}'. Use one of {', '.join(FILE_SUFFIXES)}.")
    if not path.exists():
        raise DataError(f"{path}: file not found.")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty.")
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return Dataset(pq.read_table(path))
        if kind == "csv":
            return Dataset.from_csv(str(path), keep_in_memory=True)
        return _read_json(path)
    except DataError:
        raise
    except Exception as error:  # pyarrow, pandas and csv all raise their own types
        raise DataError(f"{path}: cannot be read as {kind}: {error}") from error


def _read_json(path: Path) -> Dataset:
    """JSON or JSONL rows; a column mixing numbers and strings (answers often do) is read as strings."""
    import json

    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".jsonl":
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        rows = json.loads(text)
        rows = rows.get("data", rows) if isinstance(rows, dict) else rows
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise DataError(f"{path}: expected a list of JSON objects, one per problem.")
    columns = {key for row in rows for key in row}
    for key in columns:
        kinds = {type(row.get(key)) for row in rows} - {type(None)}
        if len(kinds) > 1 and kinds <= {int, float, str}:
            for row in rows:
                if row.get(key) is not None:
                    row[key] = str(row[key])
    return Dataset.from_list(rows)


def _read_source(source: str, split: str) -> tuple[Dataset, str]:
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in FILE_SUFFIXES)
        if not files:
            raise DataError(f"{path}: the directory holds no {', '.join(FILE_SUFFIXES)} files.")
        return datasets.concatenate_datasets([_read_table(p) for p in files]), str(path)
    if path.suffix.lower() in FILE_SUFFIXES or path.exists() or source.startswith((".", "/", "~")):
        return _read_table(path), str(path)
    try:
        return datasets.load_dataset(source, split=split), f"{source} ({split})"
    except Exception as error:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or "connect" in str(error).lower()
        hint = (
            "The Hugging Face Hub is unreachable from here. Download the dataset where the Hub is reachable "
            "(e.g. `datasets.load_dataset(...).to_parquet(...)`) and point `dataset` at the local file or directory."
            if offline or "offline" in str(error).lower()
            else "Check the dataset id and split, or point `dataset` at a local file or directory."
        )
        raise HubDatasetError(f"Cannot load '{source}' from the Hub: {error}. {hint}") from error


def _messages_from_row(prompt: Any, where: str) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    items = prompt.tolist() if hasattr(prompt, "tolist") else prompt
    if not isinstance(items, list) or not items or not all(isinstance(m, dict) and "content" in m for m in items):
        raise DataError(f"{where}: 'prompt' must be a string or a list of chat messages, got {prompt!r:.120}.")
    return [{"role": str(m.get("role", "user")), "content": str(m["content"])} for m in items]


def load_math_dataset(
    source: str | Dataset,
    *,
    split: str = "train",
    problem_column: str | None = None,
    answer_column: str | None = None,
    instruction: str | None = INSTRUCTION,
    system_prompt: str | None = None,
    max_samples: int | None = None,
    empty_answers: str = "warn",
) -> Dataset:
    """Load problems into ``prompt`` (chat messages ending with the instruction) and ``ground_truth`` (list[str]).

    verl files are recognised by their ``prompt`` and ``reward_model`` columns; other files need a problem column
    (``problem``, ``question`` or ``prompt`` by default) and an answer column (``answer``, ``solution`` or
    ``ground_truth``), both configurable.

    Rows whose answer is empty (DeepScaleR's set has six) can never be rewarded: ``empty_answers="warn"`` keeps
    them (so published splits reproduce exactly) and logs their rows, ``"drop"`` removes them, ``"error"`` raises.
    """
    if empty_answers not in ("warn", "drop", "error"):
        raise ValueError(f"empty_answers must be 'warn', 'drop' or 'error', got {empty_answers!r}.")
    if isinstance(source, Dataset):
        dataset, name = source, "dataset"
    else:
        dataset, name = _read_source(str(source), split)
    if len(dataset) == 0:
        raise DataError(f"{name}: no rows.")
    if max_samples is not None:
        dataset = dataset.select(range(min(max_samples, len(dataset))))
    columns = set(dataset.column_names)

    if answer_column is None:
        if "reward_model" in columns:
            answer_column = "reward_model.ground_truth"
        else:
            answer_column = next((c for c in ("ground_truth", "answer", "solution") if c in columns), None)
    if problem_column is None:
        problem_column = next((c for c in ("prompt", "problem", "question") if c in columns), None)
    if problem_column is None or problem_column not in columns:
        raise DataError(
            f"{name}: no problem column ({problem_column or 'prompt/problem/question'}); columns are "
            f"{sorted(columns)}. Set problem_column."
        )
    answer_root = (answer_column or "").split(".")[0]
    if not answer_column or answer_root not in columns:
        raise DataError(
            f"{name}: no answer column ({answer_column or 'ground_truth/answer/solution/reward_model'}); "
            f"columns are {sorted(columns)}. Set answer_column."
        )

    table = dataset.with_format("arrow")[:]
    problems = table.column(problem_column).to_pylist()
    answers = table.column(answer_root).to_pylist()
    answer_path = answer_column.split(".")[1:]
    prompts, truths = [], []
    prompts_unchanged = problem_column == "prompt" and not system_prompt
    for row, (problem, answer) in enumerate(zip(problems, answers)):
        where = f"{name}, row {row}, column '{answer_column}'"
        for key in answer_path:
            if not isinstance(answer, dict) or key not in answer:
                raise DataError(f"{where}: no '{key}' inside {answer!r:.120}.")
            answer = answer[key]
        truths.append(normalize_ground_truth(answer, where))
        messages = _messages_from_row(problem, f"{name}, row {row}, column '{problem_column}'")
        content = add_instruction(messages[-1]["content"], instruction)
        if content != messages[-1]["content"] or isinstance(problem, str):
            prompts_unchanged = False
            messages[-1] = {**messages[-1], "content": content}
        if system_prompt and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": system_prompt})
        prompts.append(messages)

    empty = [row for row, answers in enumerate(truths) if not answers]
    if empty and empty_answers == "error":
        raise DataError(f"{name}, column '{answer_column}': empty answer in rows {empty[:20]}.")
    if empty:
        logger.warning(
            f"{name}, column '{answer_column}': {len(empty)} rows have an empty answer (rows {empty[:10]}) and can "
            f"never be rewarded; {'dropped' if empty_answers == 'drop' else 'kept'}."
        )
    import pyarrow as pa

    keep = [c for c in table.column_names if c not in {"prompt", "ground_truth", problem_column}]
    message_type = pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))
    prompt_column = (
        table.column("prompt").cast(message_type) if prompts_unchanged else pa.array(prompts, type=message_type)
    )
    result = Dataset(
        pa.table(
            {
                **{c: table.column(c) for c in keep},
                "prompt": prompt_column,
                "ground_truth": pa.array(truths, type=pa.list_(pa.string())),
            }
        )
    )
    if empty and empty_answers == "drop":
        result = result.filter(lambda answers: len(answers) > 0, input_columns="ground_truth")
    return result


def problem_text(prompt: list[dict[str, str]] | str, instruction: str | None = INSTRUCTION) -> str:
    """The raw problem: the last user message without the appended instruction and its separating space."""
    text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
    if instruction and text.endswith(instruction):
        text = text[: -len(instruction)]
        if text.endswith(" "):
            text = text[:-1]
    return text


def filter_by_prompt_length(dataset: Dataset, tokenizer: Any, max_prompt_length: int | None) -> tuple[Dataset, int]:
    """Drop prompts longer than ``max_prompt_length`` tokens after the chat template; returns (kept, dropped)."""
    if max_prompt_length is None or len(dataset) == 0:
        return dataset, 0
    has_template = getattr(tokenizer, "chat_template", None) is not None

    def lengths(batch: dict[str, list]) -> dict[str, list]:
        if has_template:
            ids = tokenizer.apply_chat_template(batch["prompt"], add_generation_prompt=True, tokenize=True)
            ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        else:
            texts = ["".join(m["content"] for m in p) if isinstance(p, list) else p for p in batch["prompt"]]
            ids = tokenizer(texts)["input_ids"]
        return {"_n": [len(x) for x in ids]}

    counts = dataset.map(lengths, batched=True, batch_size=512, remove_columns=dataset.column_names)["_n"]
    keep = [i for i, n in enumerate(counts) if n <= max_prompt_length]
    dropped = len(dataset) - len(keep)
    if dropped:
        logger.warning(f"Dropped {dropped} of {len(dataset)} prompts longer than {max_prompt_length} tokens.")
        dataset = dataset.select(keep)
    return dataset, dropped
