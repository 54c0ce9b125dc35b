"""Built-in offline math word problems, deterministic by seed.

Harder problems chain more operations, so they have longer statements and need longer solutions: segmenting by
prompt length and extending the context stage by stage mean the same thing here as on DeepScaleR's data, with
no download. Every answer is an integer, checkable by the package's reward.
"""

from __future__ import annotations

import random

from datasets import Dataset

from .loading import INSTRUCTION, add_instruction

NAMES = ["Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Liam"]
ITEMS = ["apples", "marbles", "stickers", "books", "coins", "pencils", "shells", "cards", "stamps", "beads"]


def _amount(rng: random.Random, low: int, high: int, cap: int | None) -> int:
    return rng.randint(low, high if cap is None else max(low, min(high, cap)))


def _step(rng: random.Random, total: int, name: str, item: str, cap: int | None = None) -> tuple[str, int]:
    kind = rng.choice(["add", "add", "sub", "mul", "give"])
    if kind == "add":
        n = _amount(rng, 2, 20, cap)
        return f"Then {name} finds {n} more {item}.", total + n
    if kind == "sub" and total > 2:
        n = _amount(rng, 1, min(total - 1, 15), cap)
        return f"Then {name} loses {n} of the {item}.", total - n
    if kind == "mul" and total <= (50 if cap is None else cap):
        n = 2 if cap is not None else rng.randint(2, 3)
        word = {2: "doubles", 3: "triples"}[n]
        return f"Then a friend {word} the number of {item} {name} has.", total * n
    n = _amount(rng, 2, 12, cap)
    return f"Then {name} receives {n} {item} as a gift.", total + n


def make_problem(rng: random.Random, num_steps: int, max_operand: int | None = None) -> tuple[str, int]:
    """One word problem with ``num_steps`` operations after the starting amount, and its integer answer.
    ``max_operand`` caps every number the problem states (and makes a friend only ever double)."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    total = _amount(rng, 2, 30, max_operand)
    sentences = [f"{name} starts with {total} {item}."]
    for _ in range(num_steps):
        sentence, total = _step(rng, total, name, item, max_operand)
        sentences.append(sentence)
    sentences.append(f"How many {item} does {name} have at the end?")
    return " ".join(sentences), total


def make_synthetic_math(
    num_problems: int = 512,
    seed: int = 0,
    min_steps: int = 1,
    max_steps: int = 8,
    instruction: str | None = INSTRUCTION,
    max_operand: int | None = None,
) -> Dataset:
    """``num_problems`` word problems with 1..``max_steps`` operations each, in the trainer's format.

    Columns: ``prompt`` (one user message ending with the instruction), ``ground_truth`` (list with one integer
    string) and ``difficulty`` (the number of operations). ``max_operand`` (say 9) caps every number a problem
    states, for models too small to add two-digit numbers.
    """
    if num_problems < 1:
        raise ValueError(f"num_problems must be positive, got {num_problems}.")
    if not 1 <= min_steps <= max_steps:
        raise ValueError(f"Need 1 <= min_steps <= max_steps, got {min_steps} and {max_steps}.")
    if max_operand is not None and max_operand < 2:
        raise ValueError(f"max_operand must be at least 2 (or None for the full ranges), got {max_operand}.")
    rng = random.Random(seed)
    prompts, answers, difficulty = [], [], []
    for _ in range(num_problems):
        steps = rng.randint(min_steps, max_steps)
        text, answer = make_problem(rng, steps, max_operand)
        prompts.append([{"role": "user", "content": add_instruction(text, instruction)}])
        answers.append([str(answer)])
        difficulty.append(steps)
    return Dataset.from_dict({"prompt": prompts, "ground_truth": answers, "difficulty": difficulty})
