"""Bad input at the command line: one `fastcurl <verb>: error: ...` line and exit 2, the traceback only with --debug."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}


def fastcurl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastcurl.cli", *args], capture_output=True, text=True, env=ENV,
                          timeout=300)


def recipe(tmp_path: Path, **stage) -> str:
    path = tmp_path / "recipe.yaml"
    first = {"dataset": "synthetic", "rollout_steps": 1, **stage}
    path.write_text(yaml.safe_dump({"model_name_or_path": "/nonexistent/model", "output_dir": str(tmp_path / "run"),
                                    "use_cpu": True, "stages": [first]}))
    return str(path)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str, verb: str = "train") -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"fastcurl {verb}: error: ") and len(result.stderr.strip().splitlines()) == 1, \
        result.stderr[-2000:]
    assert "usage:" not in result.stderr and result.stdout == ""
    for fragment in fragments:
        assert fragment in result.stderr


def test_a_typo_in_a_stage_field(tmp_path):
    result = fastcurl("train", "--config", recipe(tmp_path, max_completion_lenght=64))
    assert_one_line_error(result, "unknown field 'max_completion_lenght' (did you mean 'max_completion_length'?)")


def test_generator_options_on_a_data_file(tmp_path):
    data = tmp_path / "problems.jsonl"
    data.write_text('{"problem": "1+1?", "answer": "2"}\n')
    result = fastcurl("train", "--config", recipe(tmp_path, dataset=str(data), dataset_kwargs={"num_problems": 8}))
    assert_one_line_error(result, "dataset_kwargs has 'num_problems'", "use dataset: synthetic")


def test_a_missing_recipe_file_and_debug_shows_the_traceback(tmp_path):
    missing = str(tmp_path / "nope.yaml")
    assert_one_line_error(fastcurl("train", "--config", missing), "nope.yaml")
    debug = fastcurl("train", "--config", missing, "--debug")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_an_unknown_command():
    result = fastcurl("trian")
    assert result.returncode == 2 and "unknown command 'trian'" in result.stderr


def test_a_missing_reward_module_malformed_yaml_and_an_unknown_flag(tmp_path):
    path = recipe(tmp_path)
    assert_one_line_error(fastcurl("train", "--config", path, "--reward_funcs", "nosuchmodule:reward"),
                          "Cannot load reward 'nosuchmodule:reward'", "No module named 'nosuchmodule'")
    broken = tmp_path / "broken.yaml"
    broken.write_text("stages: [ {rollout_steps: 1\n")
    assert_one_line_error(fastcurl("train", "--config", str(broken)), "not valid YAML")
    assert_one_line_error(fastcurl("train", "--cofig", path), "unrecognized arguments: --cofig")
    assert_one_line_error(fastcurl("train"), "needs a recipe: fastcurl train --config RECIPE.yaml")
    assert_one_line_error(fastcurl("train", "--config", path, "--model_name_or_path", "/nonexistent/model"),
                          "model_name_or_path /nonexistent/model: no such directory")


def test_plan_takes_the_recipe_as_train_does(tmp_path):
    result = fastcurl("plan", "--config", recipe(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "stage1-256" in result.stdout


def test_launch_names_a_bad_grace_and_a_missing_script():
    bad = subprocess.run([sys.executable, "-m", "fastcurl.cli", "launch", "--grace", "soon", "train.py"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--grace needs a number of seconds" in bad.stderr
    missing = subprocess.run([sys.executable, "-m", "fastcurl.cli", "launch"], capture_output=True, text=True)
    assert missing.returncode == 2 and "fastcurl launch: error" in missing.stderr and "training_script" in missing.stderr


def test_a_typo_in_a_top_level_field_for_train_and_plan(tmp_path):
    path = Path(recipe(tmp_path))
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, "learnin_rate": 1e-5}))
    assert_one_line_error(fastcurl("train", "--config", str(path)), "unknown top-level field 'learnin_rate'",
                          "did you mean 'learning_rate'")
    planned = fastcurl("plan", str(path))
    assert planned.returncode == 2 and "Traceback" not in planned.stderr
    assert planned.stderr.startswith("fastcurl plan: error: ") and "did you mean 'learning_rate'" in planned.stderr


def test_plan_reads_the_top_level_fields_without_importing_trl(tmp_path):
    """The field names come from the config classes' source files; they must equal the imported dataclasses'."""
    import dataclasses

    from fastcurl.cli import RunArguments
    from fastcurl.curriculum.config import FastCuRLConfig
    from fastcurl.curriculum.recipe_keys import PARSER_KEYS, recipe_field_names

    imported = {f.name for cls in (FastCuRLConfig, RunArguments) for f in dataclasses.fields(cls)
                if not f.name.startswith("_")}
    assert recipe_field_names() == frozenset(imported | PARSER_KEYS)
    probe = ("import sys; from fastcurl.curriculum.recipe_keys import recipe_field_names; "
             "assert 'learning_rate' in recipe_field_names(); print(sorted(m for m in ('trl', 'transformers', 'torch') "
             "if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=ENV, timeout=120)
    assert loaded.returncode == 0 and loaded.stdout.strip() == "[]", loaded.stderr[-2000:]


def test_a_missing_model_for_eval_and_a_hub_id_not_cached_offline(tmp_path):
    data = str(ROOT / "tests" / "data" / "fastcurl" / "test")
    for model, fragment in (("/nonexistent/model", "no such directory"),
                            ("nobody/no-such-model", "not in the Hugging Face cache while the Hub is offline")):
        result = fastcurl("eval", "--model", model, "--benchmarks", "aime2024", "--data_dir", data, "--limit", "1")
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert result.stderr.startswith("fastcurl eval: error: ") and fragment in result.stderr
    offline = fastcurl("train", "--config", recipe(tmp_path), "--model_name_or_path", "nobody/no-such-model")
    assert_one_line_error(offline, "nobody/no-such-model", "HF_HUB_OFFLINE=1")


def test_plan_refuses_a_missing_data_file_or_recipe_as_train_does_and_flags_are_never_abbreviated(tmp_path):
    planned = fastcurl("plan", recipe(tmp_path, dataset=str(tmp_path / "missing.parquet")))
    assert planned.returncode == 2 and "Traceback" not in planned.stderr, planned.stderr[-2000:]
    assert planned.stderr.startswith("fastcurl plan: error: ") and "missing.parquet: file not found" in planned.stderr
    missing = str(tmp_path / "no-such-recipe.yaml")
    for verb, argv in (("plan", [missing]), ("plan", ["--config", missing]), ("train", ["--config", missing])):
        assert_one_line_error(fastcurl(verb, *argv), f"the recipe {missing} does not exist", verb=verb)
    for verb, argv in (("train", ["--config", recipe(tmp_path)]), ("plan", [recipe(tmp_path)])):
        assert_one_line_error(fastcurl(verb, *argv, "--stages", "L1"), "--stages cannot be set on the command line",
                              verb=verb)
    # argparse would read --learning_rat as --learning_rate and train at 1.0
    assert_one_line_error(fastcurl("train", "--config", recipe(tmp_path), "--learning_rat", "1"),
                          "unrecognized arguments: --learning_rat")


def test_an_error_raised_while_training_keeps_its_traceback(tiny_model_path, tmp_path):
    """A reward that raises with reward_error_limit null stops the run as in TRL: its traceback and exit 1, not
    a one-line 'bad input' error with exit 2 (its ValueError is not the recipe's fault)."""
    (tmp_path / "raising_reward.py").write_text(
        "def reward(completions, **kwargs):\n    raise ValueError('the reward found no score column')\n")
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({
        "model_name_or_path": tiny_model_path, "reward_funcs": ["raising_reward:reward"], "reward_error_limit": None,
        "output_dir": str(tmp_path / "run"), "use_cpu": True, "report_to": "none", "save_strategy": "no",
        "per_device_train_batch_size": 4, "stages": [
            {"dataset": "synthetic", "dataset_kwargs": {"num_problems": 16}, "max_completion_length": 8,
             "num_generations": 4, "prompts_per_rollout_step": 2, "rollout_steps": 1}]}))
    result = subprocess.run([sys.executable, "-m", "fastcurl.cli", "train", "--config", str(path)],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path,
                            env={**ENV, "PYTHONPATH": f"{ENV['PYTHONPATH']}{os.pathsep}{tmp_path}"})
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" in result.stderr and "the reward found no score column" in result.stderr
    assert "fastcurl train: error:" not in result.stderr


def test_a_length_with_a_unit_a_dataset_mapping_and_a_zero_stage_cap(tmp_path):
    """Each fails in the checks, before the model loads (the model path does not exist), with one line."""
    assert_one_line_error(fastcurl("train", "--config", recipe(tmp_path, segment="L1", max_completion_length="8k")),
                          "Stage 1 ('L1-8k'): max_completion_length must be a positive integer, got '8k'")
    assert_one_line_error(fastcurl("train", "--config", recipe(tmp_path, dataset={"path": "x.parquet"})),
                          "dataset must be a file path", "dataset_kwargs")
    assert_one_line_error(fastcurl("train", "--config", recipe(tmp_path), "--max_steps_per_stage", "0"),
                          "--max_steps_per_stage must be a positive number of rollout steps, got 0")
    planned = fastcurl("plan", recipe(tmp_path, max_completion_length=None))
    assert planned.returncode == 2 and "Traceback" not in planned.stderr, planned.stderr[-2000:]
    assert "Stage 1 ('stage1-None'): max_completion_length must be a positive integer, got None" in planned.stderr


def test_wrong_types_in_a_recipe_or_a_flag_give_one_line_naming_the_field(tmp_path):
    """Each was a TypeError traceback, or 200 lines of usage before the error, for a user who quoted or nested a
    value the wrong way; plan and train say the same."""
    def written(top: dict | None = None, **stage) -> str:
        path = Path(recipe(tmp_path, **stage))
        data = yaml.safe_load(path.read_text())
        own = path.with_name(f"recipe{len(list(tmp_path.glob('recipe*.yaml')))}.yaml")
        own.write_text(yaml.safe_dump({**data, **(top or {})}))
        return str(own)

    for path, fragments in (
        (written({"stages": 5}), ("stages must be a list with one mapping per stage", "got int: 5")),
        (written(overrides=[1]), ("stages[0]: overrides must be a mapping of GRPOConfig fields",)),
        (written(reset_optimizer="later"), ("reset_optimizer must be true or false, got 'later'",)),
        (written(name="my run/1"), ("name must be 1 to 96 letters, digits", "got 'my run/1'")),
        (written(name=""), ("name must be 1 to 96", "got ''")),
    ):
        assert_one_line_error(fastcurl("train", "--config", path), *fragments)
        assert_one_line_error(fastcurl("plan", path), *fragments, verb="plan")
    assert_one_line_error(fastcurl("train", "--config", written({"seed": "abc"})),
                          "seed: invalid int value: 'abc' (from the recipe or the command line")
    assert_one_line_error(fastcurl("train", "--config", recipe(tmp_path), "--learning_rate", "abc"),
                          "learning_rate: invalid float value: 'abc'")
    assert_one_line_error(fastcurl("plan", written({"per_device_train_batch_size": "abc"})),
                          "per_device_train_batch_size must be a positive integer, got 'abc'", verb="plan")
    assert_one_line_error(fastcurl("plan", recipe(tmp_path), "--num_processes", "x"),
                          "num_processes: invalid int value: 'x'", verb="plan")
    assert_one_line_error(fastcurl("eval", "--samples", "many"), "samples: invalid int value", verb="eval")


def test_a_quoted_boolean_in_a_stage_is_read_as_the_cli_reads_it(tmp_path):
    """`reset_optimizer: "false"` used to stay the string "false", which Python reads as true."""
    from fastcurl.curriculum.plan import read_recipe_stages

    data = yaml.safe_load(Path(recipe(tmp_path, reset_optimizer="false", reset_reference="False")).read_text())
    (stage,), _, _ = read_recipe_stages(data)
    assert stage.reset_optimizer is False and stage.reset_reference is False


def test_push_to_hub_while_offline_is_refused_before_training(tiny_model_path, tmp_path):
    """It trained the whole run, every push failed, and the command exited 0."""
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({
        "model_name_or_path": tiny_model_path, "output_dir": str(tmp_path / "run"), "use_cpu": True,
        "report_to": "none", "per_device_train_batch_size": 4, "push_to_hub": True, "hub_model_id": "me/run",
        "stages": [{"dataset": "synthetic", "dataset_kwargs": {"num_problems": 16}, "max_completion_length": 8,
                    "num_generations": 4, "prompts_per_rollout_step": 2, "rollout_steps": 1}]}))
    result = fastcurl("train", "--config", str(path))
    assert_one_line_error(result, "the Hub is offline here (HF_HUB_OFFLINE=1)", "push_to_hub: false",
                          f"fastcurl push {tmp_path / 'run'} --repo_id me/run")
    assert not list((tmp_path / "run").glob("checkpoint-*")) and not list((tmp_path / "run").glob("stage-*"))


def test_the_bare_argument_may_stand_anywhere_and_run_targets_are_checked_before_the_model(tmp_path):
    path = recipe(tmp_path, segment="L1", max_completion_length=16)
    for argv in (["plan", "--num_processes", "1", path], ["plan", "--learning_rate", "1e-5", path],
                 ["plan", "--hub", "false", path, "--num_processes", "2"]):
        planned = fastcurl(*argv)
        assert planned.returncode == 0 and "L1-16" in planned.stdout, (argv, planned.stderr[-2000:])
    assert_one_line_error(fastcurl("train", "--config"), "--config needs a recipe file")
    (tmp_path / "a-file").write_text("")
    assert_one_line_error(fastcurl("train", "--config", path, "--output_dir", str(tmp_path / "a-file")),
                          "a-file is a file; give a directory")
    assert_one_line_error(fastcurl("segment", "--out", str(tmp_path / "a-file"), path),
                          "--out", "a-file is a file", verb="segment")
    import importlib.util

    if importlib.util.find_spec("wandb") is None:
        assert_one_line_error(fastcurl("train", "--config", path, "--report_to", "wandb"),
                              "report_to wandb: not installed here (pip install wandb)")


def test_max_steps_per_stage_lowers_min_rollout_steps_in_plan_and_train_alike(tmp_path):
    """A recipe with min_rollout_steps above the cap (the adaptive recipe's smoke run) was refused by plan and
    trained by train with an invalid stage; both now cap the minimum too."""
    import json

    rule = {"metric": "reward", "above": 0.9, "window": 2}
    path = recipe(tmp_path, rollout_steps=10, min_rollout_steps=5, advance_when=rule)
    planned = fastcurl("plan", path, "--max_steps_per_stage", "1", "--json", str(tmp_path / "plan.json"))
    assert planned.returncode == 0, planned.stderr[-2000:]
    (row,) = json.loads((tmp_path / "plan.json").read_text())
    assert (row["rollout_steps"], row["min_rollout_steps"]) == (1, 1)
    from fastcurl.cli import parse_train_args

    config, _ = parse_train_args(["--config", path, "--max_steps_per_stage", "1"])
    assert (config.stages[0].rollout_steps, config.stages[0].min_rollout_steps) == (1, 1)


def test_recipe_values_of_the_wrong_type_and_options_files_without_a_name(tmp_path):
    """TRL's parser passes recipe values to argparse as defaults, which argparse type-checks only when they are
    strings: a list, a number for a flag or 0 batches reached the trainer (a TypeError or ZeroDivisionError)."""
    base = yaml.safe_load(Path(recipe(tmp_path)).read_text())
    for index, (top, fragment) in enumerate((
            ({"per_device_train_batch_size": [4]}, "per_device_train_batch_size must be a single value, not a list"),
            ({"per_device_train_batch_size": 0}, "per_device_train_batch_size must be a positive integer, got 0"),
            ({"num_iterations": 0}, "num_iterations must be a positive integer, got 0"),
            ({"output_dir": 5}, "output_dir must be a string, got 5"),
            ({"bf16": 2}, "bf16 must be true or false, got 2"),
            ({"seed": 1.5}, "seed must be an integer, got 1.5"),
            ({"max_steps_per_stage": 2.5}, "max_steps_per_stage must be an integer, got 2.5"))):
        path = tmp_path / f"typed{index}.yaml"
        path.write_text(yaml.safe_dump({**base, **top}))
        assert_one_line_error(fastcurl("train", "--config", str(path)), fragment)
    for verb in ("segment", "eval", "push"):
        assert_one_line_error(fastcurl(verb, "--config"), "--config needs a YAML file", verb=verb)
    # every word after --eval is an evaluation file, as argparse reads it: none is taken for the input
    (tmp_path / "bench.jsonl").write_text('{"problem": "1+1?", "answer": "2"}\n')
    assert_one_line_error(fastcurl("segment", "--eval", str(tmp_path / "bench.jsonl"), path_of_sample(),
                                   "--out", str(tmp_path / "seg")), "segment needs an input", verb="segment")


def path_of_sample() -> str:
    return str(next((ROOT / "tests" / "data" / "fastcurl" / "train").iterdir()))


def test_a_deepspeed_config_as_a_json_string_and_the_think_policy_reward_name():
    import json

    from fastcurl.curriculum.plan import resolve_plan
    from fastcurl.curriculum.stages import StageConfig
    from fastcurl.curriculum.transformers_hooks import check_deepspeed_batch
    from fastcurl.rewards.functions import accuracy_reward_for
    from fastcurl.run.manifests import reward_names

    plans = resolve_plan([StageConfig(dataset="synthetic", num_generations=2, prompts_per_rollout_step=4)], 2, 1)
    check_deepspeed_batch(json.dumps({"gradient_accumulation_steps": "auto"}), plans, 1)  # as accelerate takes it
    with pytest.raises(ValueError, match="sets gradient_accumulation_steps: 3, but Stage 1"):
        check_deepspeed_batch(json.dumps({"gradient_accumulation_steps": 3}), plans, 1)
    assert reward_names([accuracy_reward_for("required")]) == ["fastcurl.rewards.accuracy_reward"]


def test_plan_refuses_the_values_train_refuses_and_takes_the_values_train_takes(tmp_path):
    """`plan` of a recipe that `train` refuses exited 0; and `train` refused `pad_to_multiple_of: 8`, a value its
    field (`int | str | None`) takes, because the parser types that union as a string."""
    base = yaml.safe_load(Path(recipe(tmp_path)).read_text())
    for index, (top, fragment) in enumerate((
            ({"seed": "abc"}, "seed must be an integer, got 'abc'"),
            ({"bf16": 2}, "bf16 must be true or false, got 2"),
            ({"output_dir": 5}, "output_dir must be a string, got 5"),
            ({"learning_rate": "fast"}, "learning_rate must be a number, got 'fast'"),
            ({"eval_benchmarks": [1]}, "eval_benchmarks must be a string (or a list of them), got [1]"))):
        path = tmp_path / f"refused{index}.yaml"
        path.write_text(yaml.safe_dump({**base, **top}))
        assert_one_line_error(fastcurl("plan", str(path)), fragment, verb="plan")
        train = fastcurl("train", "--config", str(path))
        assert train.returncode == 2 and top.popitem()[0] in train.stderr, train.stderr[-2000:]
    taken = {"pad_to_multiple_of": 8, "report_to": "none", "bf16": "false", "seed": "3", "learning_rate": "1e-6",
             "max_prompt_length": "None", "reward_funcs": "no_such_reward_module"}
    path = tmp_path / "taken.yaml"
    path.write_text(yaml.safe_dump({**base, **taken}))
    planned = fastcurl("plan", str(path), "--check", "false")
    assert planned.returncode == 0, planned.stderr[-2000:]
    # both read every value and stop at the reward, named whole (a string was read letter by letter: 'n')
    assert_one_line_error(fastcurl("train", "--config", str(path)), "Unknown reward 'no_such_reward_module'")
    planned = fastcurl("plan", str(path))
    assert planned.returncode == 2 and "Unknown reward 'no_such_reward_module'" in planned.stderr


def test_the_kinds_plan_reads_from_source_are_the_kinds_train_parses():
    """`plan` checks recipe values without importing TRL, from the dataclasses' annotations; where it names a
    kind, `fastcurl train`'s parser must parse that field as that kind."""
    from trl import TrlParser

    from fastcurl.cli import RunArguments
    from fastcurl.curriculum.config import FastCuRLConfig
    from fastcurl.curriculum.recipe_keys import recipe_field_kinds

    parser = TrlParser((FastCuRLConfig, RunArguments))
    parsed = {"int": "int", "float": "float", "string_to_bool": "bool", "str": "str"}
    source = recipe_field_kinds()
    checked = 0
    for action in parser._actions:
        if action.dest not in source or any(o.startswith("--no_") for o in action.option_strings):
            continue
        kind, many, _ = source[action.dest]
        if kind is not None:
            assert (kind, many) == (parsed.get(getattr(action.type, "__name__", None)), action.nargs in ("+", "*")), \
                action.dest
            checked += 1
    assert checked > 100 and source["pad_to_multiple_of"] == (None, False, True)
    assert source["max_prompt_length"] == ("int", False, True) and source["seed"] == ("int", False, False)


def test_use_vllm_without_the_vllm_package_is_one_line_before_the_model_loads(tiny_model_path, tmp_path):
    """It was TRL's ImportError traceback, after the model had loaded. (With vLLM installed, the no-server case of
    server mode is tests/test_vllm_server.py's.)"""
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here: tests/test_vllm_server.py checks the no-server error")
    path = Path(recipe(tmp_path))
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, "model_name_or_path": str(tiny_model_path)}))
    for mode in ("server", "colocate"):
        assert_one_line_error(fastcurl("train", "--config", str(path), "--use_vllm", "true", "--vllm_mode", mode),
                              f"use_vllm (vllm_mode {mode}) needs the vllm package in this environment: pip install "
                              "vllm")


def test_one_flag_style_a_dashed_flag_names_its_snake_case_form(tmp_path):
    """HfArgumentParser also took --learning-rate for --learning_rate; help and errors use --snake_case only."""
    path = recipe(tmp_path)
    assert_one_line_error(fastcurl("train", "--config", path, "--learning-rate", "1e-5"),
                          "unrecognized arguments: --learning-rate 1e-5 (flags are --snake_case: --learning_rate)")
    assert_one_line_error(fastcurl("plan", path, "--num-processes", "2"),
                          "(flags are --snake_case: --num_processes)", verb="plan")
    assert_one_line_error(fastcurl("plan", path, "--learning-rate", "2"),
                          "(flags are --snake_case: --learning_rate)", verb="plan")
    assert_one_line_error(fastcurl("segment", path, "--num-segments", "3", "--out", str(tmp_path / "s")),
                          "(flags are --snake_case: --num_segments)", verb="segment")
    assert "--learning-rate" not in fastcurl("train", "--help_all").stdout


def test_plan_finds_its_recipe_after_pass_through_flags_of_every_kind(tmp_path):
    """A bare boolean (`--use_vllm RECIPE`), `--hub t` and `--config=RECIPE` took the recipe for a flag's value
    (or found none); the kind of each passed-through `train` field now says how many words it takes."""
    path = recipe(tmp_path)
    for words in (["--use_vllm", path], ["--use_vllm", "true", path], ["--hub", "t", path], [f"--config={path}"],
                  [f"--json={tmp_path / 'plan.json'}", path], [path, f"--learning_rate=1e-5"]):
        planned = fastcurl("plan", *words)
        assert planned.returncode == 0 and "stage-1" not in planned.stderr, (words, planned.stderr[-2000:])
        assert planned.stdout.startswith("stage "), words
    assert (tmp_path / "plan.json").is_file()
    # as argparse reads it, every word after --reward_funcs is a reward: the recipe must come first
    assert_one_line_error(fastcurl("plan", "--reward_funcs", "a", "b", path), "give the recipe first: fastcurl plan "
                          f"{path}", verb="plan")
    assert fastcurl("plan", path, "--reward_funcs", "accuracy", "format").returncode == 0


def test_plan_runs_trains_checks_after_the_table_unless_told_not_to(tmp_path):
    """`plan` printed a table for recipes `train` refused at once (a typo'd scheduler or reward name), so a plan
    was no check before a long queue wait. What depends on the machine (an integration, vllm) is train's."""
    base = yaml.safe_load(Path(recipe(tmp_path)).read_text())
    for index, (top, fragment) in enumerate((
            ({"lr_scheduler_type": "cosinee"}, "cosinee is not a valid SchedulerType"),
            ({"optim": "adamww"}, "adamww"),
            ({"reward_funcs": ["acuracy"]}, "Unknown reward 'acuracy'"))):
        path = tmp_path / f"refused{index}.yaml"
        path.write_text(yaml.safe_dump({**base, **top}))
        planned = fastcurl("plan", str(path))
        assert planned.returncode == 2 and planned.stdout.startswith("stage "), planned.stderr[-2000:]
        [line] = planned.stderr.strip().splitlines()
        assert line.startswith("fastcurl plan: error: ") and fragment in line, line
        assert fastcurl("train", "--config", str(path)).returncode == 2
        assert fastcurl("plan", str(path), "--check", "false").returncode == 0
    path = tmp_path / "elsewhere.yaml"
    path.write_text(yaml.safe_dump({**base, "report_to": ["wandb"], "use_vllm": True, "max_prompt_length": "None",
                                    "reward_funcs": ["accuracy", "fastcurl.rewards:accuracy_reward"]}))
    planned = fastcurl("plan", str(path))
    assert planned.returncode == 0, planned.stderr[-2000:]
