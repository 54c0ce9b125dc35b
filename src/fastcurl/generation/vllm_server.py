"""Server-mode generation: a preflight against the vLLM server, and the ``disk`` weight sync.

TRL's server mode syncs weights over NCCL, which needs CUDA on both sides: on a CPU server (or mixed hardware,
or while debugging) ``GRPOTrainer.__init__`` fails in ``init_communicator``. With ``vllm_weight_sync: disk`` the
policy's weights are written to a safetensors file (atomically) and the server is asked to reload them through
vLLM's dev-mode ``/collective_rpc`` endpoint (``reload_weights``). It is slower than NCCL (the weights make a
round trip through the file system) but works wherever the server can read the trainer's files.

The hook: :class:`DiskSyncVLLMClient` replaces TRL's ``VLLMClient`` in ``trl.generation.vllm_generation`` while
the trainer is constructed (:func:`disk_sync_client`), so TRL's own generation path, request building and
``max_tokens`` handling stay untouched; only connecting and syncing change.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import RunInputError

WEIGHT_SYNC_MODES = ("nccl", "disk")


class VLLMServerError(RunInputError, RuntimeError):
    """The vLLM server is unreachable or cannot serve this curriculum (the user's to fix: the CLI shows one line)."""


def launch_command(model: str, max_model_len: int, host: str, port: int) -> str:
    return (f"VLLM_SERVER_DEV_MODE=1 vllm serve {model} --host {host} --port {port} --max-model-len {max_model_len} "
            "--weight-transfer-config '{\"backend\":\"nccl\"}'")


def _get_json(url: str, timeout: float) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (a URL the user configured)
        return json.loads(response.read())


def preflight(base_url: str, model: str, needed_len: int, wait_s: float = 30.0, poll_s: float = 1.0,
              host: str = "HOST", port: int | str = "PORT") -> dict[str, Any]:
    """Check the server before any model loads: reachable within ``wait_s``, serving ``model``, long enough.

    ``needed_len`` is the longest stage's prompt plus completion. Returns the server's model entry. It polls
    ``/v1/models`` itself: TRL's ``VLLMClient.check_server`` polls ``/health``, which says neither the model served
    nor its ``max_model_len``, and a client is built only after the policy has loaded.
    """
    deadline = time.monotonic() + wait_s
    last_error: Exception | None = None
    while True:
        try:
            models = _get_json(f"{base_url.rstrip('/')}/v1/models", timeout=min(10.0, max(wait_s, 1.0)))
            break
        except (urllib.error.URLError, OSError, ValueError) as error:
            last_error = error
            if time.monotonic() >= deadline:
                from urllib.parse import urlparse

                own = base_url.rstrip("/") == f"http://{host}:{port}"  # from host and port, not vllm_server_base_url
                serve_port = int(port) if own and str(port).isdigit() else urlparse(base_url).port or 8000
                raise VLLMServerError(
                    f"No vLLM server answered at {base_url}{f' (host {host}, port {port})' if own else ''} within "
                    f"{wait_s:.0f} s ({last_error}). Start it first, for example:\n  "
                    f"{launch_command(model, needed_len, '0.0.0.0', serve_port)}\n"
                    f"or point vllm_server_host/vllm_server_port (or vllm_server_base_url) at the running server."
                ) from error
            time.sleep(poll_s)
    entries = models.get("data", [])
    served = [e.get("root") or e.get("id") for e in entries]
    entry = next((e for e in entries if model in (e.get("root"), e.get("id"))
                  or Path(str(e.get("root", ""))).resolve() == Path(model).resolve()), None)
    if entry is None:
        raise VLLMServerError(
            f"The vLLM server at {base_url} serves {served}, not {model}. Start it with the model you train: "
            f"{launch_command(model, needed_len, host, port)}"
        )
    max_len = entry.get("max_model_len")
    if max_len is not None and max_len < needed_len:
        raise VLLMServerError(
            f"The vLLM server at {base_url} has max_model_len={max_len}, but the longest stage needs {needed_len} "
            f"tokens (max_prompt_length + its max_completion_length). Restart it with --max-model-len {needed_len} "
            f"or more."
        )
    return entry


def preflight_run(model: Any, args: Any, longest_completion: int) -> None:
    """Before any model loads, on the main process: the run's server answers, serves ``model`` and fits its longest
    stage (``max_prompt_length`` + the longest ``max_completion_length``)."""
    if os.environ.get("RANK", "0") != "0":
        return
    name = model if isinstance(model, str) else getattr(model.config, "_name_or_path", "")
    base_url = args.vllm_server_base_url or f"http://{args.vllm_server_host}:{args.vllm_server_port}"
    preflight(base_url, name, (args.max_prompt_length or 0) + longest_completion,
              wait_s=args.vllm_preflight_timeout, host=args.vllm_server_host, port=args.vllm_server_port)


def server_generation(model: Any, args: Any, stage_lengths: list[int]) -> contextlib.AbstractContextManager:
    """What building a trainer that generates on a vLLM server needs: the preflight for the longest stage (before
    any model loads), then, with ``vllm_weight_sync: disk``, our client installed while TRL constructs its own."""
    if not (getattr(args, "use_vllm", False) and getattr(args, "vllm_mode", None) == "server"):
        return contextlib.nullcontext()
    preflight_run(model, args, max(stage_lengths or [args.max_completion_length]))
    if getattr(args, "vllm_weight_sync", "nccl") != "disk":
        return contextlib.nullcontext()
    return disk_sync_client(os.path.join(args.output_dir, ".vllm-weights"))


def _post_json(url: str, payload: dict[str, Any], timeout: float = 600.0) -> Any:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        body = response.read()
    return json.loads(body) if body else None


def make_disk_sync_client(base: type) -> type:
    """TRL's ``VLLMClient`` with its NCCL communicator replaced by a safetensors file and a server reload."""

    class DiskSyncVLLMClient(base):  # type: ignore[misc, valid-type]
        weights_dir: str | None = None  # set by the trainer; a temporary directory otherwise

        def init_communicator(self, device: Any = 0) -> None:
            """No NCCL group: check the server is up; weights travel through the file system."""
            self.check_server(total_timeout=self.connection_timeout if hasattr(self, "connection_timeout") else 60)
            self._sync_dir = Path(self.weights_dir or tempfile.mkdtemp(prefix="fastcurl-weights-"))
            self._sync_dir.mkdir(parents=True, exist_ok=True)
            self.sync_seconds: list[float] = []

        def update_named_params(self, metadata: Any, params: Iterable[tuple[str, Any]]) -> None:
            # A fresh directory per sync, so the server never reads a path whose file is being replaced.
            started = time.monotonic()
            target = self._sync_dir / f"sync-{len(self.sync_seconds):06d}"
            target.mkdir(parents=True, exist_ok=True)
            write_weights(target, ((name, tensor) for name, tensor in params))
            _post_json(f"{self.base_url}/collective_rpc",
                       {"method": "reload_weights", "kwargs": {"weights_path": str(target)}})
            for old in self._sync_dir.glob("sync-*"):
                if old != target:
                    shutil.rmtree(old, ignore_errors=True)
            self.sync_seconds.append(time.monotonic() - started)

        def update_named_param(self, name: str, weights: Any) -> None:
            self.update_named_params(None, [(name, weights)])

        def close_communicator(self) -> None:
            pass

    return DiskSyncVLLMClient


def write_weights(directory: Path, params: Iterator[tuple[str, Any]]) -> Path:
    """Write ``model.safetensors`` atomically: a reader never sees a half-written file."""
    from safetensors.torch import save_file

    tensors = {name: tensor.detach().to("cpu").clone().contiguous() for name, tensor in params}
    if "lm_head.weight" not in tensors and "model.embed_tokens.weight" in tensors:
        # A tied head is not a parameter of its own, but the server keeps a processed copy of it that a reload
        # only refreshes when the file names it (measured: without this the head stays at the old weights).
        tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"]
    handle, tmp = tempfile.mkstemp(dir=directory, suffix=".safetensors.tmp")
    os.close(handle)
    save_file({k: v.clone() if k == "lm_head.weight" else v for k, v in tensors.items()}, tmp,
              metadata={"format": "pt"})
    final = directory / "model.safetensors"
    os.replace(tmp, final)
    return final


@contextlib.contextmanager
def disk_sync_client(weights_dir: str | None = None) -> Iterator[None]:
    """While the trainer is built, TRL's generation backend constructs our client instead of its NCCL one."""
    import trl.generation.vllm_generation as vllm_generation

    original = vllm_generation.VLLMClient
    client = make_disk_sync_client(original)
    client.weights_dir = weights_dir
    vllm_generation.VLLMClient = client
    try:
        yield
    finally:
        vllm_generation.VLLMClient = original


def reset_server_weights(base_url: str, model_dir: str) -> None:
    """Reload the base model's weights on the server (test isolation, or undoing a run's trained weights)."""
    _post_json(f"{base_url.rstrip('/')}/collective_rpc",
               {"method": "reload_weights", "kwargs": {"weights_path": model_dir}})
    with contextlib.suppress(Exception):
        _post_json(f"{base_url.rstrip('/')}/reset_prefix_cache", {})


def cleanup(path: str | None) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)
