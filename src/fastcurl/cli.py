"""The ``fastcurl`` command: ``train``, ``plan``, ``segment``, ``eval`` and ``push``.

``fastcurl train --config RECIPE.yaml [--field value ...]`` parses the recipe with TRL's ``TrlParser``, so any
FastCuRLConfig field can be overridden on the command line as in TRL and open-r1 scripts.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from typing import Any

REWARDS = {
    "accuracy": "fastcurl.rewards:accuracy_reward",
    "plain_accuracy": "fastcurl.rewards:plain_accuracy_reward",
    "format": "fastcurl.rewards:format_reward",
    "boxed_format": "fastcurl.rewards:boxed_format_reward",
    "overlong": "fastcurl.rewards:stage_overlong_penalty",
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
    torch_dtype: str = field(
        default="auto",
        metadata={
            "help": "Load the model in this dtype (float32, bfloat16, float16). 'auto': on a CPU, bfloat16 when the "
            "run trains in bf16 (chosen by the hardware, see bf16) else float32; on a GPU, TRL's default."
        },
    )


def model_dtype(torch_dtype: str | None, config) -> str | None:
    """The dtype a training run loads its model in; None leaves TRL's default."""
    from .generation.precision import resolve_dtype, runs_on_cpu

    if torch_dtype in (None, "auto"):
        if not runs_on_cpu(config.use_cpu):
            return None
        return "bfloat16" if config.bf16 else "float32"
    if torch_dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"torch_dtype must be auto, float32, bfloat16 or float16, got {torch_dtype!r}.")
    return resolve_dtype(torch_dtype, config.use_cpu)


def reward_target(name: str) -> tuple[str, str]:
    """``(module, function)`` a reward name stands for: one of ours or ``module:function``."""
    target = REWARDS.get(name, name)
    if ":" not in target:
        raise ValueError(f"Unknown reward '{name}'. Use one of {', '.join(REWARDS)} or module:function.")
    module, attr = target.split(":", 1)
    return module, attr


def load_reward(name: str):
    import importlib

    module, attr = reward_target(name)
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"Cannot load reward '{name}' ({error}). Use one of {', '.join(REWARDS)} or "
                         "module:function with the module on PYTHONPATH.") from error


# fastcurl's own FastCuRLConfig fields for `fastcurl train --help`, grouped the way TRL's docs group GRPOConfig's.
TRAIN_HELP_GROUPS: dict[str, tuple[str, ...]] = {
    "Curriculum": ("stages", "max_prompt_length", "save_stage_checkpoints"),
    "Generation server (use_vllm with vllm_mode: server)": ("vllm_weight_sync", "vllm_preflight_timeout"),
    "Validation during training": ("eval_benchmarks", "eval_data_dir", "eval_limit", "eval_on_stage_end"),
    "Reliability": ("reward_error_limit", "noop_guard_threshold", "noop_guard_patience", "noop_guard_stop"),
    "Hub": ("hub_overwrite_branches",),
}
# Inherited fields worth a line of their own in the short help: what recipes set most.
COMMON_INHERITED = ("output_dir", "learning_rate", "beta", "entropy_coef", "epsilon", "temperature",
                    "per_device_train_batch_size", "bf16", "use_vllm", "logging_steps", "save_steps", "report_to",
                    "push_to_hub", "hub_model_id", "seed", "log_level")


def _field_help_lines(docs: dict[str, tuple[Any, str]], names: Any, width: int = 100) -> list[str]:
    import textwrap

    lines = []
    for name in names:
        default, text = docs[name]
        lines.append(f"  --{name} (default: {default!r})")
        lines.extend(textwrap.wrap(text.replace("%%", "%"), width, initial_indent="      ",
                                   subsequent_indent="      "))
    return lines


def field_docs(dataclass_type: type) -> dict[str, tuple[Any, str]]:
    """Each field's default and help, from the imported dataclass."""
    import dataclasses

    docs = {}
    for f in dataclasses.fields(dataclass_type):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        docs[f.name] = (default, f.metadata.get("help", ""))
    return docs


def config_field_docs(needed: set[str]) -> tuple[dict[str, tuple[Any, str]], list[str]] | None:
    """FastCuRLConfig's fields' defaults and help and GRPOConfig's field names, read from the source files
    (``recipe_keys``): importing TRL takes seconds that ``--help`` should not. None where a needed field's
    default or help is not a literal there (the caller imports the classes instead)."""
    from .curriculum.recipe_keys import dataclass_fields_from_source, field_default_and_help

    config = dataclass_fields_from_source("fastcurl", "curriculum/config.py", "FastCuRLConfig")
    grpo = dataclass_fields_from_source("trl", "trainer/grpo_config.py", "GRPOConfig")
    if config is None or grpo is None:
        return None
    docs = {name: field_default_and_help(node) for name, node in config.items()}
    if any(docs.get(name) is None for name in needed):
        return None
    return docs, list(grpo)


def train_help(from_source: bool = True) -> str:
    """``fastcurl train --help``: the config file, the run's own options and fastcurl's fields first."""
    from .curriculum.stages import StageConfig

    stage_docs = field_docs(StageConfig)
    run_docs = field_docs(RunArguments)
    own = [n for names in TRAIN_HELP_GROUPS.values() for n in names]
    read = config_field_docs(set(own) | set(COMMON_INHERITED)) if from_source else None
    if read is not None:
        config_docs, inherited = read
        missing = [n for n in config_docs if n not in inherited and n not in own]
        if any(config_docs[n] is None for n in missing):
            read = None
    if read is None:
        from trl import GRPOConfig

        from .curriculum.config import FastCuRLConfig

        config_docs, inherited = field_docs(FastCuRLConfig), [f.name for f in dataclasses.fields(GRPOConfig)]
        missing = [n for n in config_docs if n not in inherited and n not in own]
    lines = [
        "usage: fastcurl train --config RECIPE.yaml [--field value ...]",
        "",
        "Run a curriculum: every stage of the recipe inside one .train(). Any field below, and any of",
        "GRPOConfig's, can be set in the recipe or overridden here (--learning_rate 2e-6).",
        "",
        "  --config RECIPE.yaml",
        "      A recipe (YAML): configs/quickstart_cpu.yaml, configs/fastcurl_1.5b_preview.yaml, ...",
        "  --help_all",
        f"      Also list every inherited GRPOConfig/TrainingArguments field ({len(inherited)} of them).",
        "",
        "Run:",
        *_field_help_lines(run_docs, run_docs),
    ]
    for group, names in TRAIN_HELP_GROUPS.items():
        lines += ["", f"{group}:", *_field_help_lines(config_docs, names)]
    if missing:
        lines += ["", "Other fastcurl fields:", *_field_help_lines(config_docs, missing)]
    lines += ["", "Stage fields (each entry of a recipe's `stages:` list; set them in the recipe):",
              *_field_help_lines(stage_docs, stage_docs)]
    lines += ["", "Common inherited fields (GRPOConfig, TrainingArguments):",
              *_field_help_lines(config_docs, COMMON_INHERITED),
              "", f"... and {len(inherited) - len(COMMON_INHERITED)} more: `fastcurl train --help_all`, or TRL's "
              "GRPOConfig reference (huggingface.co/docs/trl/grpo_trainer)."]
    return "\n".join(lines)


def parse_train_args(argv: list[str] | None = None, prog: str = "fastcurl train", need_model: bool = True,
                     this_machine: bool = True):
    """The recipe and flags as ``(FastCuRLConfig, RunArguments)``, every check run; ``this_machine=False`` (``fastcurl
    plan``, often run elsewhere) leaves out what depends on this machine (installed integrations, vllm, paths)."""
    from trl import TrlParser

    from .curriculum.config import FastCuRLConfig

    import yaml

    from .cli_args import check_recipe_values, one_line_errors, split_equals

    parser = one_line_errors(TrlParser((FastCuRLConfig, RunArguments), prog=prog, allow_abbrev=False), recipe=True)
    argv = split_equals(list(argv or []))
    flags = [a for i, a in enumerate(argv) if a != "--config" and (i == 0 or argv[i - 1] != "--config")]
    _, unknown = parser.parse_known_args(flags)  # before the config is built (its checks would speak first)
    if unknown:
        from .cli_args import snake_case_hint

        hint = snake_case_hint(unknown, parser) or " (fields are --snake_case; the recipe is --config RECIPE.yaml)"
        raise ValueError(f"unrecognized arguments: {' '.join(unknown)}{hint} (`{prog} --help` lists them)")
    if "--stages" in flags:  # TRL's parser would read the words as a list of stages, each a malformed mapping
        recipe_words = "fastcurl plan RECIPE.yaml" if prog == "fastcurl plan" else f"{prog} --config RECIPE.yaml"
        raise ValueError(f"--stages cannot be set on the command line: the curriculum is the recipe's `stages:` list "
                         f"({recipe_words}; --max_steps_per_stage N shortens each stage).")
    if argv[-1:] == ["--config"]:
        raise ValueError("--config needs a recipe file: fastcurl train --config RECIPE.yaml")
    if "--config" in argv[:-1]:
        from .curriculum.recipe_keys import check_recipe_keys

        recipe_path = argv[argv.index("--config") + 1]
        if not os.path.isfile(recipe_path):
            raise ValueError(f"the recipe {recipe_path} does not exist (--config takes a recipe YAML file).")
        with open(recipe_path) as handle:
            try:
                recipe = yaml.safe_load(handle)
            except yaml.YAMLError as error:
                raise ValueError(f"the recipe is not valid YAML: {error}") from error
        check_recipe_keys(recipe, recipe_path)
        if isinstance(recipe, dict):
            check_recipe_values(recipe, parser, recipe_path)
    if need_model and "--config" not in argv and "--model_name_or_path" not in argv:
        raise ValueError("needs a recipe: fastcurl train --config RECIPE.yaml [--field value ...]")
    try:
        config, run = parser.parse_args_and_config(args=argv)
    except yaml.YAMLError as error:
        raise ValueError(f"the recipe is not valid YAML: {error}") from error
    for holder, name in ((run, "reward_funcs"), (config, "eval_benchmarks")):
        if isinstance(getattr(holder, name), str):  # `reward_funcs: accuracy` in YAML: one name, not its letters
            setattr(holder, name, [getattr(holder, name)])
    if need_model and not run.model_name_or_path:
        parser.error("model_name_or_path is required (in the recipe or as --model_name_or_path).")
    if run.max_steps_per_stage is not None and run.max_steps_per_stage < 1:
        raise ValueError(f"--max_steps_per_stage must be a positive number of rollout steps, got "
                         f"{run.max_steps_per_stage}; leave it out to run every stage in full.")
    if run.max_steps_per_stage is not None and config.stages:
        cap = run.max_steps_per_stage
        config.stages = [dataclasses.replace(s, rollout_steps=min(s.rollout_steps, cap),
                                             min_rollout_steps=min(s.min_rollout_steps, cap)) for s in config.stages]
    if this_machine:
        check_run_targets(config)
    else:
        import importlib.util

        for name in run.reward_funcs:  # named as train names them, without importing the reward's module
            module, _ = reward_target(name)
            try:
                found = importlib.util.find_spec(module) is not None
            except ImportError:  # a missing parent package of a dotted module
                found = False
            if not found:
                raise ValueError(f"Cannot load reward '{name}' (No module named '{module}'). Use one of "
                                 f"{', '.join(REWARDS)} or module:function with the module on PYTHONPATH.")
    return config, run


def check_run_targets(config) -> None:
    """What the run writes to and reports to, checked before any model loads (transformers checks it later)."""
    from .cli_args import check_directory_target

    check_directory_target(config.output_dir, "output_dir")
    import importlib.util

    if config.use_vllm and importlib.util.find_spec("vllm") is None:  # TRL needs it for its client in server mode too
        raise ValueError(f"use_vllm (vllm_mode {config.vllm_mode}) needs the vllm package in this environment: pip "
                         "install vllm, or leave use_vllm false to generate with transformers.")
    from transformers.integrations import get_available_reporting_integrations

    available = set(get_available_reporting_integrations())
    missing = [name for name in config.report_to or [] if name not in available and name not in ("none", "all")]
    if missing:
        raise ValueError(f"report_to {', '.join(missing)}: not installed here (pip install {' '.join(missing)}), "
                         f"or report to {', '.join(sorted(available)) or 'none'} instead.")


def check_model_source(given: str, option: str) -> None:
    """A model that cannot load is bad input, named before anything loads: a missing local directory, or a Hub id
    that is not in the local cache while the Hub is offline."""
    from pathlib import Path

    from .generation.models import PACKAGE_PREFIX

    if given.startswith(PACKAGE_PREFIX) or Path(given).expanduser().exists():
        return
    if given.startswith(("/", ".", "~")) or given.count("/") > 1:
        raise FileNotFoundError(f"{option} {given}: no such directory (give a local model directory, a Hub id or "
                                "package:NAME).")
    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE and not isinstance(try_to_load_from_cache(given, "config.json"), str):
        raise ValueError(f"{option} {given}: not a local directory, and not in the Hugging Face cache while the Hub "
                         "is offline (HF_HUB_OFFLINE=1). Download it first where the Hub is reachable "
                         f"(huggingface-cli download {given}) or give a local model directory.")


class RunPhase:
    """Where ``fastcurl`` is: once ``train`` hands over to the trainer's loop, errors keep their traceback."""

    training = False


def train(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[2:] if argv is None else argv)
    if "--help_all" in argv:
        argv = ["--help"]
    elif "-h" in argv or "--help" in argv:
        print(train_help())
        return

    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # else DeepSpeed warns at import that it found no GPU
    config, run = parse_train_args(argv)  # the whole recipe is validated here, before any model loads

    from pathlib import Path

    from .generation.models import resolve_model
    from .run.checkpoints import find_last_checkpoint
    from .curriculum.trainer import CurriculumGRPOTrainer

    resume = None
    if run.resume:
        resume = find_last_checkpoint(config.output_dir)
        if resume is not None:
            if config.stages:
                from .curriculum.callback import check_checkpoint_recipe
                from .curriculum.plan import resolve_plan

                plans = resolve_plan(config.stages, config.per_device_train_batch_size, config.world_size,
                                     config.num_iterations)
                check_checkpoint_recipe(resume, plans, config.resume_with_changed_recipe)
            resume = str(resume)
            print(f"[fastcurl] resuming from {resume}", flush=True)
        else:
            print(f"[fastcurl] no checkpoint in {config.output_dir}; starting from scratch", flush=True)
    rewards = [load_reward(name) for name in run.reward_funcs]
    check_model_source(run.model_name_or_path, "model_name_or_path")
    model = resolve_model(run.model_name_or_path, run.gguf_file)
    dtype = model_dtype(run.torch_dtype, config)
    if dtype:
        config.model_init_kwargs = {**(config.model_init_kwargs or {}), "dtype": getattr(torch, dtype)}
        if dtype == "bfloat16" and not config.bf16:
            print("[fastcurl] model weights in bfloat16 (torch_dtype), training without bf16 autocast", flush=True)
    trainer = CurriculumGRPOTrainer(model=model, reward_funcs=rewards, args=config)
    RunPhase.training = True  # from here a ValueError is the run's failure (a reward, TRL, torch), not bad input
    trainer.train(resume_from_checkpoint=resume)
    if trainer.stopped_by_signal:
        last = find_last_checkpoint(config.output_dir)
        print(f"[fastcurl] stopped by SIGTERM at update {trainer.state.global_step}; checkpoint {last}. "
              f"Continue with: fastcurl train --config ... --resume", flush=True)
    else:
        trainer.save_final_model()
        from .plots import plot_training

        path = plot_training(trainer.state.log_history, trainer.curriculum.stage_start_steps, config.output_dir)
        print(f"[fastcurl] done: {trainer.state.global_step} updates; model in {config.output_dir}; plot {path}")
    # Trackers closed and the process group destroyed, as accelerate asks (gloo's threads live on while the model
    # refers to the group: the exit itself is made safe by run/gloo_exit.py, which the trainer registered).
    trainer.accelerator.end_training()
    from .run import HubPushCallback

    pushes = trainer.run_callback(HubPushCallback)
    if pushes is not None and pushes.failed:
        print(f"[fastcurl] {len(pushes.failed)} Hub push(es) failed ({', '.join(r.branch for r in pushes.failed)}); "
              f"the run is saved in {config.output_dir}. Push it again with: fastcurl push {config.output_dir} "
              f"--repo_id {pushes.pusher.repo_id}", file=sys.stderr, flush=True)
        sys.exit(1)


def segment(argv: list[str] | None = None) -> None:
    """``fastcurl segment INPUT --out DIR``: segments as parquet, stats JSON, a length histogram, leaks."""
    from .cli_args import SegmentArguments, parse_verb

    args = parse_verb(SegmentArguments, argv or [], "fastcurl segment", positional="input")
    eval_paths = _expand_eval_paths(args.eval)

    import json
    from pathlib import Path

    from .data import load_math_dataset, segment_by_prompt_length
    from .plots import plot_length_histogram

    columns = {"problem_column": args.problem_column, "answer_column": args.answer_column}
    dataset = load_math_dataset(args.input, split=args.split, **columns)
    tokenizer = None
    if args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    large = len(dataset) > 10_000
    split = segment_by_prompt_length(dataset, num_segments=args.num_segments, tokenizer=tokenizer, progress=large)
    out = Path(args.out)
    paths = split.save(out, progress=large)
    stats = {"source": str(args.input), **split.stats()}
    for name, path in paths.items():
        stats["segments"][name]["file"] = str(path)
    plot = plot_length_histogram(split.lengths, split.thresholds, split.unit, out / "length_histogram.png",
                                 title=Path(str(args.input)).name)
    if eval_paths:
        from .data.contamination import contamination_report, find_contamination

        eval_sets = {path.stem: load_math_dataset(path) for path in eval_paths}
        matches = find_contamination(dataset, eval_sets, ngram=args.ngram, threshold=args.overlap, progress=large)
        report = contamination_report(matches, len(dataset))
        (out / "contamination.json").write_text(json.dumps(report, indent=2))
        stats["contamination"] = {k: report[k] for k in ("contaminated_train_problems", "per_benchmark")}
    (out / "stats.json").write_text(json.dumps(stats, indent=2))

    print(f"[fastcurl] {len(dataset):,} problems from {args.input}; threshold(s) "
          f"{', '.join(f'{t:.2f}' for t in split.thresholds)} {split.unit}")
    for name, row in stats["segments"].items():
        print(f"  {name:>4}: {row['count']:>7,} problems, mean length {row['mean_length']:.2f} -> {row['file']}")
    if eval_paths:
        summary = stats["contamination"]
        print(f"[fastcurl] contamination: {summary['contaminated_train_problems']} training problems match "
              f"{', '.join(sorted(eval_sets))}: {json.dumps(summary['per_benchmark'])} "
              f"(details in {out / 'contamination.json'})")
    print(f"[fastcurl] stats {out / 'stats.json'}, histogram {plot}")


def _expand_eval_paths(given: list[str]):
    """Evaluation files, a directory standing for the files inside it; missing paths fail before any work."""
    from pathlib import Path

    from .data.loading import FILE_SUFFIXES

    paths = []
    for item in given:
        path = Path(item).expanduser()
        if path.is_dir():
            paths.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in FILE_SUFFIXES))
        elif path.is_file():
            paths.append(path)
        else:
            raise FileNotFoundError(f"--eval {item}: no such file or directory.")
    return paths


def plan(argv: list[str] | None = None) -> None:
    """``fastcurl plan RECIPE.yaml [--dataset PATH] [--num_processes N] [--field value ...]``: the stage table.

    A recipe alone is read without TRL (about a second); ``--field value`` overrides go through the full config.
    """

    from .cli_args import PlanArguments, parse_verb

    from .cli_args import split_equals

    argv = ["--recipe" if a == "--config" else a for a in split_equals(argv or [])]  # train's flag, too
    try:
        args, overrides = parse_verb(PlanArguments, argv, "fastcurl plan", positional="recipe", remaining=True)
    except ValueError as error:
        recipes = [a for i, a in enumerate(argv) if a.endswith((".yaml", ".yml")) and os.path.isfile(a)
                   and (i == 0 or argv[i - 1] != "--json")]
        if "plan needs a recipe" in str(error) and recipes:  # a list flag (--reward_funcs a b RECIPE) took it
            raise ValueError(f"give the recipe first: fastcurl plan {recipes[-1]} [--field value ...] (after a flag "
                             "that takes a list, such as --reward_funcs, it is read as one more value).") from error
        raise
    if not args.hub:
        # Read by huggingface_hub when it is first imported (below): no retries against an unreachable Hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from .curriculum.plan import format_plan, plan_curriculum, read_recipe_stages, resolve_plan

    if overrides:
        # Planning trains nothing: switch off the precision flags that transformers checks against this machine.
        config, _ = parse_train_args(["--config", args.recipe, *overrides, "--bf16", "false", "--fp16", "false"],
                                     prog="fastcurl plan", need_model=False, this_machine=False)
        recipe = {"stages": [s.to_dict() for s in config.stages or []],
                  "per_device_train_batch_size": config.per_device_train_batch_size,
                  "num_iterations": config.num_iterations}
    else:
        import yaml

        with open(args.recipe) as handle:
            try:
                recipe = yaml.safe_load(handle)
            except yaml.YAMLError as error:
                raise ValueError(f"{args.recipe} is not valid YAML: {error}") from error
        from .curriculum.recipe_keys import check_recipe_keys

        check_recipe_keys(recipe, args.recipe)
    stages, per_device, num_iterations = read_recipe_stages(recipe)
    if not overrides:
        from .curriculum.recipe_keys import check_recipe_types

        check_recipe_types(recipe, args.recipe)  # what `fastcurl train` refuses, `plan` refuses too
    if args.dataset:
        import dataclasses

        stages = [dataclasses.replace(s, dataset=args.dataset) if s.dataset not in (None, "synthetic") else s
                  for s in stages]

    plans = resolve_plan(stages, per_device, args.num_processes, num_iterations)

    from .data.loading import DataError, HubDatasetError
    from .data import load_stage_datasets

    try:
        sizes: list[int | None] = [len(d) for d in load_stage_datasets([p.config for p in plans], None)]
    except (ValueError, OSError) as error:
        if isinstance(error, DataError) and not isinstance(error, HubDatasetError):
            raise  # a local file that cannot become training data: train refuses it, so the plan does too
        print(f"[fastcurl] data sizes unknown: {error}" + ("" if args.hub else " (planning offline: --hub asks the "
              "Hub, --dataset PATH uses a local copy)"), file=sys.stderr)
        sizes = [None] * len(stages)
    rows = plan_curriculum(plans, sizes)
    print(format_plan(rows, args.num_processes))
    if args.json:
        import json
        from dataclasses import asdict

        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in rows], f, indent=2)
    if args.check and not overrides and not args.dataset:  # with overrides the config was built above
        sys.stdout.flush()  # the table first (about a second); building train's config takes a few more
        parse_train_args(["--config", args.recipe, "--bf16", "false", "--fp16", "false"], prog="fastcurl plan",
                         need_model=False, this_machine=False)


def evaluate(argv: list[str] | None = None) -> None:
    """``fastcurl eval --model PATH --benchmarks aime2024,math500 --samples 16``: the paper's benchmark table."""
    from .cli_args import EvalArguments, parse_verb

    args = parse_verb(EvalArguments, argv or [], "fastcurl eval")

    import json
    from pathlib import Path

    from .evaluation import (
        SamplingSettings,
        TransformersBackend,
        VLLMBackend,
        choose_backend,
        format_table,
        load_benchmark,
        regrade,
    )
    from .generation.models import resolve_model

    def think_policy(model_path: str | None) -> str:
        if args.think != "template":
            return args.think
        if model_path is None:
            print("[fastcurl] --think template needs --model to read its chat template; grading with 'auto'",
                  file=sys.stderr)
            return "auto"
        from transformers import AutoTokenizer

        from .rewards import think_policy_for

        policy = think_policy_for(AutoTokenizer.from_pretrained(model_path), "template")
        print(f"[fastcurl] answers: think policy '{policy}' (from the chat template)", flush=True)
        return policy

    if args.regrade:
        if not Path(args.regrade).is_file():
            raise FileNotFoundError(f"--regrade {args.regrade}: no such file (a samples.jsonl written by fastcurl eval).")
        if args.model:
            check_model_source(args.model, "--model")
        model_for_template = str(resolve_model(args.model, args.gguf_file)) if args.model else None
        results = regrade(args.regrade, think=think_policy(model_for_template))
        print(format_table(results))
        out = Path(args.regrade).with_name("results_regraded.json")
        out.write_text(json.dumps(results, indent=2))
        print(f"[fastcurl] results {out}")
        return
    names = [n.strip() for n in args.benchmarks.split(",") if n.strip()]
    benchmarks = {Path(n).stem if Path(n).suffix else n: load_benchmark(n, args.data_dir, args.limit) for n in names}
    backend_name = choose_backend(args.backend)
    settings = SamplingSettings(temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens,
                                seed=args.seed)
    from .rewards import default_pool

    check_model_source(args.model, "--model")
    default_pool().start()  # math-verify's import in the workers overlaps the model's loading
    model_path = str(resolve_model(args.model, args.gguf_file))
    think = think_policy(model_path)
    if backend_name == "transformers":
        from .generation.precision import describe_dtype_choice, resolve_dtype

        reason = describe_dtype_choice(args.dtype)
        args.dtype = resolve_dtype(args.dtype)
        print(f"[fastcurl] eval dtype: {args.dtype or 'checkpoint default'} ({reason})", flush=True)
    options = {"batch_size": args.batch_size, "dtype": args.dtype, "tensor_parallel_size": args.tensor_parallel_size}
    if args.data_parallel > 1:
        import torch

        from .evaluation.backends import DataParallelBackend

        devices = args.devices.split(";") if args.devices else None
        if devices is None and torch.cuda.is_available():
            tp = args.tensor_parallel_size
            devices = [",".join(str(i * tp + j) for j in range(tp)) for i in range(args.data_parallel)]
        if devices is None:  # CPU: the workers share the cores
            options["threads"] = max(1, (torch.get_num_threads()) // args.data_parallel)
        backend = DataParallelBackend(backend_name, model_path, settings, args.data_parallel, devices, options)
    elif backend_name == "vllm":
        backend = VLLMBackend(model_path, settings, tensor_parallel_size=args.tensor_parallel_size)
    else:
        backend = TransformersBackend.from_path(model_path, settings, batch_size=args.batch_size, dtype=args.dtype)
    from .evaluation import evaluate as run_evaluation

    print(f"[fastcurl] eval backend: {backend_name}", flush=True)
    try:
        results = run_evaluation(backend, benchmarks, args.out, args.samples, think=think)
    finally:
        if hasattr(backend, "close"):
            backend.close()
    print(format_table(results))
    print(f"[fastcurl] results {Path(args.out) / 'results.json'}, samples {Path(args.out) / 'samples.jsonl'}")


def push(argv: list[str] | None = None) -> None:
    """``fastcurl push RUN_DIR --repo_id USER/NAME``: stage branches and the final model, as a run pushes them."""
    from .cli_args import PushArguments, parse_verb

    args = parse_verb(PushArguments, argv or [], "fastcurl push", positional="run_dir")
    from .run.hub import push_run

    results = push_run(args.run_dir, args.repo_id, token=args.token, private=args.private or None,
                       overwrite_branches=args.overwrite_branches)
    for result in results:
        print(f"[fastcurl] {args.repo_id}@{result.branch}: {'pushed' if result.ok else 'FAILED: ' + str(result.error)}")
    if not all(r.ok for r in results):
        sys.exit(1)


# What a wrong recipe, path or column raises before any work starts: shown as one line, not a traceback.
BAD_INPUT: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                                              KeyError)


def launch(argv: list[str]) -> int:
    """``fastcurl launch [--grace S] [accelerate launch options] SCRIPT [args]``: see ``fastcurl.run.launch``."""
    if argv[:1] in (["-h"], ["--help"]):
        print("usage: fastcurl launch [--grace SECONDS] [accelerate launch options] SCRIPT [script args]\n\n"
              "`accelerate launch` for clusters: after SIGTERM (Slurm, Kubernetes, torchrun) every rank saves one "
              "checkpoint and stops, and this launcher then exits 0 (accelerate's exits 143); a single process "
              "gets --grace seconds (30) to save, not accelerate's 5. `accelerate launch --help` lists the options.")
        return 0
    from .run.launch import launch as launch_run

    return launch_run(argv)


COMMANDS = {
    "train": "run a curriculum from a recipe (fastcurl train --config RECIPE.yaml)",
    "plan": "print a recipe's resolved stage table without loading a model",
    "segment": "split a training set into FastCuRL's L1/L2/L3 by prompt length, with stats and a histogram",
    "eval": "pass@1 over k samples on AIME 2024, MATH 500, AMC 2023, Minerva, OlympiadBench",
    "push": "push a run's stage checkpoints to Hub branches and its final model to main",
    "launch": "`accelerate launch` that exits 0 when SIGTERM stopped every rank at a saved checkpoint",
}


def main_help() -> str:
    rows = "\n".join(f"  {name:<9}{text}" for name, text in COMMANDS.items())
    return (
        "usage: fastcurl COMMAND [options]\n\nCurriculum reinforcement learning (FastCuRL) for math reasoning "
        f"models, on TRL's GRPOTrainer.\n\ncommands:\n{rows}\n\n`fastcurl COMMAND --help` shows a command's options."
    )


def main(argv: list[str] | None = None) -> None:
    try:
        run_command(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:  # `fastcurl plan ... | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def run_command(argv: list[str]) -> None:
    commands = {"train": train, "segment": segment, "plan": plan, "eval": evaluate, "push": push,
                "launch": launch}
    assert set(commands) == set(COMMANDS)
    if not argv or argv[0] in ("-h", "--help"):
        print(main_help())
        return
    if argv[0] == "launch":  # every option after it is accelerate's (its own --debug included)
        sys.exit(launch(argv[1:]))
    if argv[0] not in commands:
        print(main_help(), file=sys.stderr)
        print(f"\nfastcurl: error: unknown command '{argv[0]}'; choose one of {', '.join(COMMANDS)}.", file=sys.stderr)
        sys.exit(2)
    debug = "--debug" in argv
    args = [a for a in argv[1:] if a != "--debug"]
    RunPhase.training = False
    try:
        commands[argv[0]](args)
    except BAD_INPUT as error:
        from .errors import RunInputError

        if debug or (RunPhase.training and not isinstance(error, RunInputError)):
            raise  # a failure of the run itself (a reward, TRL, torch): its traceback, exit 1
        text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())  # one line
        print(f"fastcurl {argv[0]}: error: {text} (--debug shows the traceback)", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
