"""The options of ``fastcurl segment``, ``plan``, ``eval`` and ``push``, as dataclasses for TRL's ``TrlParser``.

One field per option, each with its help: the same style (and ``--snake_case`` flags) as ``fastcurl train``'s
``FastCuRLConfig``, so every verb reads alike and accepts ``--config FILE.yaml`` for its options. Nothing here
imports torch or transformers' trainer: ``--help`` answers at once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

BENCHMARKS = "aime2024,math500,amc2023,minerva,olympiad_bench"


def check_directory_target(path: str, option: str) -> None:
    """An output directory that is a file now fails here, naming the option, not after the work is done."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{option} {path} is a file; give a directory (it is created if missing).")


@dataclass
class SegmentArguments:
    """Split a math training set by raw prompt length (FastCuRL: L1 <= mean < L3, L2 = all)."""

    input: str = field(default="", metadata={
        "help": "verl parquet, JSONL/CSV/parquet problem file, directory or Hub dataset id (also the first "
        "positional argument)."})
    out: str = field(default="", metadata={"help": "Output directory for segments, stats.json and the plot."})
    num_segments: int = field(default=2, metadata={"help": "2 = FastCuRL's L1/L2/L3; k > 2 = quantiles."})
    tokenizer: str | None = field(default=None, metadata={
        "help": "Measure lengths in this tokenizer's tokens instead of characters."})
    split: str = field(default="train", metadata={"help": "Split to load for a Hub dataset id."})
    problem_column: str | None = field(default=None, metadata={
        "help": "Problem column of a plain file (default: prompt/problem/question)."})
    answer_column: str | None = field(default=None, metadata={
        "help": "Answer column of a plain file (default: ground_truth/answer/...)."})
    eval: list[str] = field(default_factory=list, metadata={
        "help": "Evaluation files or directories to check the training problems against for contamination."})
    ngram: int = field(default=8, metadata={"help": "Tokens per n-gram for near-duplicate detection."})
    overlap: float = field(default=0.7, metadata={"help": "Share of shared n-grams that makes a near duplicate."})

    def __post_init__(self) -> None:
        if not self.input or not self.out:
            raise ValueError("segment needs an input and --out DIR: fastcurl segment INPUT --out DIR.")
        check_directory_target(self.out, "--out")
        if self.num_segments < 2:
            raise ValueError(f"--num_segments must be at least 2, got {self.num_segments}.")
        if not 0 < self.overlap <= 1:
            raise ValueError(f"--overlap must be in (0, 1], got {self.overlap}.")


@dataclass
class PlanArguments:
    """Print a recipe's resolved stage table without loading a model (offline unless --hub)."""

    recipe: str = field(default="", metadata={
        "help": "Recipe YAML, the file `fastcurl train --config` takes (also the first positional argument)."})
    dataset: str | None = field(default=None, metadata={
        "help": "Use this data source for every stage that names one (a local copy)."})
    num_processes: int = field(default=1, metadata={"help": "Training processes to derive batches for."})
    json: str | None = field(default=None, metadata={"help": "Also write the table to this JSON file."})
    check: bool = field(default=True, metadata={
        "help": "After the table, run every check `fastcurl train` runs on the recipe (its config is built, which "
        "imports TRL: a few seconds); a recipe train would refuse then fails here too. false: the table only."})
    hub: bool = field(default=False, metadata={
        "help": "Ask the Hub for the size of Hub datasets that are not in the local cache (by default planning "
        "stays offline and shows their size as '?')."})

    def __post_init__(self) -> None:
        if not self.recipe:
            raise ValueError("plan needs a recipe: fastcurl plan RECIPE.yaml.")
        if not os.path.isfile(self.recipe):
            raise FileNotFoundError(f"the recipe {self.recipe} does not exist (fastcurl plan takes a recipe YAML "
                                    "file: fastcurl plan RECIPE.yaml).")
        if self.num_processes < 1:
            raise ValueError(f"--num_processes must be at least 1, got {self.num_processes}.")


@dataclass
class EvalArguments:
    """pass@1 averaged over samples, pass@k, lengths and 'wait' counts on the paper's benchmarks."""

    model: str | None = field(default=None, metadata={
        "help": "Model directory or Hub id (or package:NAME with --gguf_file)."})
    gguf_file: str | None = field(default=None, metadata={
        "help": "GGUF file inside the model directory (converted once, cached)."})
    benchmarks: str = field(default=BENCHMARKS, metadata={
        "help": f"Comma-separated names ({BENCHMARKS}), files or Hub ids."})
    data_dir: str | None = field(default=None, metadata={"help": "Directory holding the benchmark files (verl parquet)."})
    samples: int = field(default=16, metadata={"help": "Samples per problem (pass@1 is their mean)."})
    temperature: float = field(default=0.6, metadata={"help": "Sampling temperature (FastCuRL: 0.6)."})
    top_p: float = field(default=1.0, metadata={"help": "1.0 as FastCuRL; DeepScaleR used 0.95."})
    max_tokens: int = field(default=32768, metadata={"help": "Maximum generated tokens per sample."})
    limit: int | None = field(default=None, metadata={"help": "Evaluate only the first N problems of each benchmark."})
    out: str = field(default="eval_results", metadata={"help": "Directory for samples.jsonl and results.json."})
    backend: str = field(default="auto", metadata={"help": "auto, vllm or transformers.",
                                                    "choices": ["auto", "vllm", "transformers"]})
    batch_size: int = field(default=64, metadata={"help": "Completions per generate call (transformers)."})
    tensor_parallel_size: int = field(default=1, metadata={"help": "GPUs per vLLM engine."})
    data_parallel: int = field(default=1, metadata={
        "help": "Model copies in separate processes, each on its own GPU(s); prompts are split."})
    devices: str | None = field(default=None, metadata={
        "help": "GPU ids per data-parallel worker, ';'-separated (default 0;1;... or groups of "
        "--tensor_parallel_size). Empty on CPU."})
    dtype: str = field(default="auto", metadata={
        "help": "torch dtype for the transformers backend. auto: on a CPU bfloat16 only where it is native (a "
        "short matmul probe decides), else float32; on a GPU the checkpoint's own.",
        "choices": ["auto", "float32", "bfloat16", "float16"]})
    think: str = field(default="template", metadata={
        "help": "Answer region. template (default): decided from the model's chat template, as in training: "
        "'required' (after </think>, 0 without it) when the template opens <think>, else 'auto' (after "
        "</think> if present, else the whole text). none: the whole text.",
        "choices": ["template", "auto", "required", "none"]})
    seed: int = field(default=0, metadata={"help": "Sampling seed."})
    regrade: str | None = field(default=None, metadata={"help": "Grade a samples.jsonl again; generate nothing."})

    def __post_init__(self) -> None:
        if self.samples < 1 or self.max_tokens < 1 or (self.limit is not None and self.limit < 1):
            raise ValueError("--samples, --max_tokens and --limit must be positive.")
        if not 0 < self.top_p <= 1 or self.temperature < 0:
            raise ValueError("--top_p must be in (0, 1] and --temperature non-negative.")
        if not self.model and not self.regrade:
            raise ValueError("--model is required (or --regrade SAMPLES_JSONL).")


@dataclass
class PushArguments:
    """Push a run's stage checkpoints to Hub branches and its final model to main, as a run pushes them."""

    run_dir: str = field(default="", metadata={
        "help": "A fastcurl output_dir (with stage_manifest.json and stage-N-<name>/); also the first positional "
        "argument."})
    repo_id: str = field(default="", metadata={"help": "Hub repository, e.g. me/fastcurl-1.5b."})
    private: bool = field(default=False, metadata={"help": "Create the repository as private."})
    overwrite_branches: bool = field(default=False, metadata={
        "help": "Overwrite stage branches that exist and were not pushed from this run directory."})
    token: str | None = field(default=None, metadata={"help": "Hub token (default: the logged-in one)."})

    def __post_init__(self) -> None:
        if not self.run_dir or not self.repo_id:
            raise ValueError("push needs a run directory and --repo_id: fastcurl push RUN_DIR --repo_id USER/NAME.")


def parse_verb(dataclass_type: type, argv: list[str], prog: str, positional: str | None = None,
               remaining: bool = False):
    """``argv`` parsed into ``dataclass_type`` with TRL's parser; a leading bare argument fills ``positional``.

    With ``remaining`` the arguments it does not know come back too (``fastcurl plan``'s config overrides).
    A bad value is one ``prog: error: ...`` line and exit 2, as argparse reports its own errors.
    """
    from trl import TrlParser

    parser = one_line_errors(TrlParser(dataclass_type, prog=prog, description=dataclass_type.__doc__,
                                       allow_abbrev=False))
    argv = split_equals(list(argv))
    if argv[-1:] == ["--config"]:
        raise ValueError(f"--config needs a YAML file of {prog}'s options: {prog} --config FILE.yaml")
    argv = with_positional(argv, parser, positional) if positional else argv
    # Flags the verb does not know are named before its options' own checks run (a typo'd --modle must not read
    # as "--model is required").
    flags = [a for i, a in enumerate(argv) if a != "--config" and (i == 0 or argv[i - 1] != "--config")]
    _, unknown = parser.parse_known_args(flags)
    if unknown and (snake_case_hint(unknown, parser) or not remaining):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    parsed, rest = parser.parse_args_and_config(args=argv, return_remaining_strings=True)
    if rest and not remaining:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return (parsed, rest) if remaining else parsed


def split_equals(argv: list[str]) -> list[str]:
    """``--field=value`` as the two words ``--field value``, so flags are found however they are written."""
    words = []
    for word in argv:
        name, equals, value = word.partition("=")
        if equals and re.fullmatch(r"--[A-Za-z_][A-Za-z0-9_-]*", name):
            words += [name, value]
        else:
            words.append(word)
    return words


def with_positional(argv: list[str], parser, positional: str) -> list[str]:
    """``argv`` with its one bare argument, wherever it stands, given as ``--<positional>``.

    A flag's value is not a bare argument; a flag the parser does not know (``fastcurl plan``'s config overrides)
    is taken to have a value unless the next word is a flag too.
    """
    if f"--{positional}" in argv:
        return argv
    from .curriculum.recipe_keys import STRING_BOOLS, recipe_field_kinds

    nargs = {option: action.nargs for action in parser._actions for option in action.option_strings}
    # A flag this verb does not know is a `fastcurl train` field passed through (plan's overrides): its kind says
    # whether it takes several words (`--reward_funcs a b`), an optional one (a boolean) or exactly one.
    for name, (kind, many, _) in (recipe_field_kinds() or {}).items():
        nargs.setdefault(f"--{name}", "+" if many else "?" if kind == "bool" else None)
    index = 0
    while index < len(argv):
        word = argv[index]
        if not word.startswith("-"):
            return [f"--{positional}", word, *argv[:index], *argv[index + 1:]]
        takes_value = nargs.get(word, "unknown")  # None: exactly one value
        if takes_value in ("+", "*"):  # every word up to the next flag is its value, as argparse reads it
            index += 1
            while index < len(argv) and not argv[index].startswith("-"):
                index += 1
            continue
        following = argv[index + 1] if index + 1 < len(argv) else None
        if "=" not in word and following is not None and not following.startswith("-") and (
                takes_value is None or takes_value == "unknown"
                or (takes_value == "?" and following.lower() in STRING_BOOLS)):
            index += 2
        else:
            index += 1
    return argv


def one_line_errors(parser, recipe: bool = False):
    """``parser`` whose errors raise ValueError instead of printing the usage (up to 200 lines for ``train``).

    ``fastcurl`` prints a ValueError as one ``fastcurl VERB: error: ...`` line and exits 2, as argparse would,
    with a pointer to ``--help``. A value from the recipe is checked by the same argparse type as a flag's, so
    the message says where it may have come from.
    """
    verb = parser.prog
    for action in parser._actions:  # one flag style: HfArgumentParser also adds --a-b for each --a_b
        for option in [o for o in action.option_strings if o.startswith("--") and "-" in o[2:]]:
            action.option_strings.remove(option)
            parser._option_string_actions.pop(option, None)

    def error(message: str):
        if message.startswith("argument --"):
            field_name = message.split()[1].split("/")[0].strip("-:")
            where = "from the recipe or the command line; " if recipe else ""
            message = f"{field_name}: {message.split(': ', 1)[-1]} ({where}`{verb} --help` shows each field)"
        else:
            message += snake_case_hint(message.split(), parser) + f" (`{verb} --help` shows the options)"
        raise ValueError(message)

    parser.error = error
    return parser


def snake_case_hint(words: list[str], parser) -> str:
    """`` (flags are --snake_case: --learning_rate)`` for a ``--learning-rate`` among ``words``, else nothing."""
    known = [w.replace("-", "_").replace("__", "--", 1) for w in words if w.startswith("--") and "-" in w[2:]]
    known = [w for w in known if w in parser._option_string_actions]
    return f" (flags are --snake_case: {', '.join(known)})" if known else ""


def check_recipe_values(recipe: dict, parser, source: str) -> None:
    """Each recipe value of the type its flag takes, or an error naming the field.

    TRL's parser hands a recipe's values to argparse as defaults, and argparse type-checks only string defaults:
    ``per_device_train_batch_size: [4]`` or ``bf16: 2`` would reach the trainer as given and fail (or not) far
    from the recipe line that caused it. The kinds are read from the dataclasses' source (``recipe_keys``), where
    ``int | str`` is visible as a union the parser takes as a string; mappings and enumerations are the config's
    to check. The parser's own kinds serve only where the source cannot be read.
    """
    from .curriculum.recipe_keys import check_recipe_types, check_value

    if check_recipe_types(recipe, source, strings=False):  # argparse checks strings, in its words
        return  # the kinds read from the dataclasses' source: a union (``int | str``) is not checked
    kinds = {"int": "int", "float": "float", "string_to_bool": "bool", "str": "str"}
    for action in parser._actions:
        if action.dest in recipe and action.dest != "stages" and not isinstance(recipe[action.dest], str):
            kind = kinds.get(getattr(action.type, "__name__", None))
            check_value(action.dest, recipe[action.dest], kind, action.nargs in ("+", "*"), source)
