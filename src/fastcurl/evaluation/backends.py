"""Sample completions for evaluation: vLLM's offline engine where it is installed, transformers elsewhere.

Both take chat prompts and return, per prompt, ``n`` samples as (text, generated tokens, finish reason), so
the harness never cares which one ran.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

Sample = tuple[str, int, str]  # completion text, generated tokens, "stop" or "length"


@dataclass
class SamplingSettings:
    temperature: float = 0.6
    top_p: float = 1.0
    max_tokens: int = 32768
    seed: int = 0


def choose_backend(requested: str = "auto") -> str:
    """``vllm`` when requested, or on ``auto`` when vLLM is installed and a GPU is visible; else ``transformers``."""
    if requested not in ("auto", "vllm", "transformers"):
        raise ValueError(f"backend must be auto, vllm or transformers, got {requested!r}.")
    if requested != "auto":
        if requested == "vllm" and importlib.util.find_spec("vllm") is None:
            raise ValueError("backend 'vllm' needs vLLM: pip install 'fastcurl[vllm]' (or use --backend transformers).")
        return requested
    if importlib.util.find_spec("vllm") is not None:
        import torch

        if torch.cuda.is_available():
            return "vllm"
    return "transformers"


class TransformersBackend:
    """Batched ``model.generate``: several prompts and all their samples in one call, left-padded."""

    def __init__(self, model: Any, tokenizer: Any, settings: SamplingSettings, batch_size: int = 64) -> None:
        self.model, self.tokenizer, self.settings = model, tokenizer, settings
        self.batch_size = batch_size
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @classmethod
    def from_path(cls, path: str, settings: SamplingSettings, batch_size: int = 64, dtype: str | None = "auto"):
        """Load a model for generation; ``dtype="auto"`` is bfloat16 on a CPU only where it is native."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from ..generation.precision import resolve_dtype

        dtype = resolve_dtype(dtype) if dtype in (None, "auto") else dtype  # an explicit name was warned about
        kwargs = {"dtype": getattr(torch, dtype)} if dtype else {}
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        model.eval()
        return cls(model, AutoTokenizer.from_pretrained(path), settings, batch_size)

    @staticmethod
    def prompts_for(batch_size: int, n: int) -> int:
        """Whole prompts (all ``n`` samples each) that fit in ``batch_size`` completions per call, at least one."""
        return max(1, batch_size // n)

    def prompts_per_call(self, n: int) -> int:
        return self.prompts_for(self.batch_size, n)

    def generate(self, prompts: list[list[dict[str, str]]], n: int) -> list[list[Sample]]:
        import torch

        texts = [self.tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts]
        encoded = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = encoded.to(self.model.device)
        sampling = self.settings.temperature > 0
        torch.manual_seed(self.settings.seed)
        with torch.no_grad():
            output = self.model.generate(
                **encoded,
                do_sample=sampling,
                temperature=self.settings.temperature if sampling else None,
                top_p=self.settings.top_p if sampling else None,
                max_new_tokens=self.settings.max_tokens,
                num_return_sequences=n,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        generated = output[:, encoded["input_ids"].shape[1] :]
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        results: list[list[Sample]] = []
        for i in range(len(prompts)):
            samples = []
            for row in generated[i * n : (i + 1) * n].tolist():
                stop = next((j for j, t in enumerate(row) if t in eos_ids), None)
                tokens = row[: stop + 1] if stop is not None else row
                text = self.tokenizer.decode(tokens, skip_special_tokens=True)
                samples.append((text, len(tokens), "stop" if stop is not None else "length"))
            results.append(samples)
        return results


class VLLMBackend:
    """vLLM's offline engine: all samples of a prompt in one request (``n``), many prompts per call."""

    def __init__(self, path: str, settings: SamplingSettings, tensor_parallel_size: int = 1,
                 max_model_len: int | None = None, **engine_kwargs: Any) -> None:
        from vllm import LLM

        self.settings = settings
        self.llm = LLM(model=path, tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len,
                       seed=settings.seed, **engine_kwargs)
        self.tokenizer = self.llm.get_tokenizer()

    PROMPTS_PER_CALL = 256  # the engine schedules its own batches; this only bounds one request's size

    def prompts_per_call(self, n: int) -> int:
        return self.PROMPTS_PER_CALL

    def generate(self, prompts: list[list[dict[str, str]]], n: int) -> list[list[Sample]]:
        from vllm import SamplingParams

        params = SamplingParams(n=n, temperature=self.settings.temperature, top_p=self.settings.top_p,
                                max_tokens=self.settings.max_tokens, seed=self.settings.seed)
        texts = [self.tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts]
        outputs = self.llm.generate(texts, params, use_tqdm=False)
        return [
            [(o.text, len(o.token_ids), "length" if o.finish_reason == "length" else "stop") for o in out.outputs]
            for out in outputs
        ]


def build_backend(kind: str, path: str, settings: SamplingSettings, options: dict[str, Any]) -> Any:
    """A backend by name; module-level so data-parallel workers can build their own copy."""
    if kind == "vllm":
        return VLLMBackend(path, settings, tensor_parallel_size=options.get("tensor_parallel_size", 1))
    return TransformersBackend.from_path(path, settings, batch_size=options.get("batch_size", 64),
                                         dtype=options.get("dtype"))


def _data_parallel_worker(conn: Any, device: str | None, kind: str, path: str, settings: SamplingSettings,
                          options: dict[str, Any]) -> None:
    import os

    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device  # before torch or vLLM initialise CUDA
    if options.get("threads"):
        import torch

        torch.set_num_threads(options["threads"])
    try:
        backend = build_backend(kind, path, settings, options)
        conn.send(("ready", None))
    except Exception as error:  # the parent reports it with the device named
        conn.send(("error", repr(error)))
        return
    while True:
        task = conn.recv()
        if task is None:
            return
        prompts, n = task
        try:
            conn.send(("ok", backend.generate(prompts, n)))
        except Exception as error:
            conn.send(("error", repr(error)))


class DataParallelBackend:
    """One backend copy per device in its own process; each call's prompts are split across them, in order.

    On GPUs each worker sees one device (``CUDA_VISIBLE_DEVICES``), so ``--data_parallel 8`` runs eight vLLM
    engines on eight GPUs. Without devices the workers share the CPU, which is how the tests run it.
    """

    def __init__(self, kind: str, path: str, settings: SamplingSettings, workers: int,
                 devices: list[str] | None = None, options: dict[str, Any] | None = None) -> None:
        import multiprocessing as mp

        if devices is not None and len(devices) != workers:
            raise ValueError(f"{workers} data-parallel workers need {workers} devices, got {devices}.")
        context = mp.get_context("spawn")
        self.options = dict(options or {})
        self.connections, self.processes = [], []
        for i in range(workers):
            parent, child = context.Pipe()
            device = devices[i] if devices else None
            process = context.Process(target=_data_parallel_worker,
                                      args=(child, device, kind, path, settings, self.options), daemon=True)
            process.start()
            self.connections.append(parent)
            self.processes.append(process)
        for i, conn in enumerate(self.connections):
            status, detail = conn.recv()
            if status != "ready":
                self.close()
                raise RuntimeError(f"data-parallel worker {i} (device {devices[i] if devices else 'cpu'}) failed "
                                   f"to load the model: {detail}")
        self.kind = kind

    def prompts_per_call(self, n: int) -> int:
        if self.kind == "vllm":
            per_worker = VLLMBackend.PROMPTS_PER_CALL
        else:
            per_worker = TransformersBackend.prompts_for(self.options.get("batch_size", 64), n)
        return per_worker * len(self.connections)

    def generate(self, prompts: list[list[dict[str, str]]], n: int) -> list[list[Sample]]:
        size = -(-len(prompts) // len(self.connections))
        shards = [prompts[i : i + size] for i in range(0, len(prompts), size)]
        for conn, shard in zip(self.connections, shards):
            conn.send((shard, n))
        results: list[list[Sample]] = []
        for conn, _ in zip(self.connections, shards):
            status, payload = conn.recv()
            if status != "ok":
                raise RuntimeError(f"data-parallel generation failed: {payload}")
            results.extend(payload)
        return results

    def close(self) -> None:
        for conn in self.connections:
            try:
                conn.send(None)
            except OSError:
                pass
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()

