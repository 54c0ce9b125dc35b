"""Fixtures: a tiny random Qwen2 with a BPE tokenizer trained here, so the real GRPOTrainer runs in ~0.1 s/step."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fastcurl"

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_model(path: Path, vocab_size: int = 320, seed: int = 0) -> Path:
    """Train a byte-level BPE tokenizer on the synthetic problems and save a random ~200K-parameter Qwen2."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    from fastcurl.data import make_synthetic_math

    texts = [p[0]["content"] for p in make_synthetic_math(200, seed=1)["prompt"]]
    texts += ["\\boxed{12} </think> <think> The answer is 7 so 3 + 4 = 7."] * 20
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = fast.eos_token_id
    model.generation_config.pad_token_id = fast.pad_token_id
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> str:
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-qwen2")))


SAMPLE_DATA = Path(__file__).resolve().parent / "data" / "fastcurl"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The full FastCuRL sets (40,315 training problems), for the tests that reproduce published numbers."""
    if not SHARED_DATA.exists():
        pytest.skip(f"needs the full FastCuRL data (40,315 problems, the published split) at {SHARED_DATA}; the "
                    "shipped sample in tests/data/fastcurl is too small for this test")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """The shipped sample (tests/data/README.md): the five test sets whole, the first rows of L1/L2/L3."""
    return SAMPLE_DATA
