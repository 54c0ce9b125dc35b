"""The ``fastcurl`` command: ``train``, ``segment`` and ``plan``.

``fastcurl train --config RECIPE.yaml [--field value ...]`` parses the recipe with TRL's ``TrlParser``, so any
FastCuRLConfig field can be overridden on the command line as in TRL and open-r1 scripts.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

REWARDS = {
    "accuracy": "fastcurl.rewards:accuracy_reward",
    "plain_accuracy": "fastcurl.rewards:plain_accuracy_reward",
    "format": "fastcurl.rewards:format_reward",
    "boxed_format": "fastcurl.rewards:boxed_format_reward",
}


@dataclass
class RunArguments:
    """What a run needs beside the training config: the model, the rewards and how to start."""

    model_name_or_path: str = field(
        default="", metadata={"help": "Hub id, local directory, or 'package:NAME' for a model shipped in a package."}
    )
    gguf_file: str | None = field(
        default=None, metadata={"help": "GGUF file inside the model directory; converted once to a plain model."}
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy"],
        metadata={"help": f"Reward functions: {', '.join(REWARDS)}, or module:function."},
    )
    max_steps_per_stage: int | None = field(
        default=None, metadata={"help": "Cut every stage to at most this many rollout steps (smoke runs, CI)."}
    )
    resume: bool = field(default=False, metadata={"help": "Resume from the newest checkpoint in output_dir."})
    torch_dtype: str | None = field(
        default=None, metadata={"help": "Load the model in this dtype (float32, bfloat16, float16)."}
    )


def load_reward(name: str):
    import importlib

    target = REWARDS.get(name, name)
    if ":" not in target:
        raise ValueError(f"Unknown reward '{name}'. Use one of {', '.join(REWARDS)} or module:function.")
    module, attr = target.split(":", 1)
    return getattr(importlib.import_module(module), attr)


def parse_train_args(argv: list[str] | None = None):
    from trl import TrlParser

    from .config import FastCuRLConfig

    parser = TrlParser((FastCuRLConfig, RunArguments), prog="fastcurl train")
    config, run = parser.parse_args_and_config(args=argv)
    if not run.model_name_or_path:
        parser.error("model_name_or_path is required (in the recipe or as --model_name_or_path).")
    if run.max_steps_per_stage is not None and config.stages:
        for stage in config.stages:
            stage.rollout_steps = min(stage.rollout_steps, run.max_steps_per_stage)
    return config, run


def train(argv: list[str] | None = None) -> None:
    config, run = parse_train_args(argv)  # the whole recipe is validated here, before any model loads
    import torch
    from transformers.trainer_utils import get_last_checkpoint

    from .models import resolve_model
    from .trainer import CurriculumGRPOTrainer

    rewards = [load_reward(name) for name in run.reward_funcs]
    model = resolve_model(run.model_name_or_path, run.gguf_file)
    if run.torch_dtype:
        config.model_init_kwargs = {**(config.model_init_kwargs or {}), "dtype": getattr(torch, run.torch_dtype)}
    resume = None
    if run.resume:
        resume = get_last_checkpoint(config.output_dir)
        if resume is None:
            print(f"[fastcurl] no checkpoint in {config.output_dir}; starting from scratch", flush=True)
    trainer = CurriculumGRPOTrainer(model=model, reward_funcs=rewards, args=config)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(config.output_dir)
    from .plots import plot_training

    path = plot_training(trainer.state.log_history, trainer.curriculum.stage_start_steps, config.output_dir)
    print(f"[fastcurl] done: {trainer.state.global_step} updates; model in {config.output_dir}; plot {path}")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"train": train}
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        parser = argparse.ArgumentParser(prog="fastcurl", description=__doc__)
        parser.add_argument("command", choices=sorted(commands))
        parser.parse_args(argv[:1] or ["--help"])
        return
    commands[argv[0]](argv[1:])


if __name__ == "__main__":
    main()
