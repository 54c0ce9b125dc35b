"""Hub push through huggingface_hub's real client, with its HTTP layer answered by tests/fake_hub.py."""

from __future__ import annotations

import json

import pytest
from fake_hub import FakeHub

from fastcurl import CurriculumGRPOTrainer, FastCuRLConfig, StageConfig
from fastcurl.run import HubPushCallback
from fastcurl.run.hub import model_card, push_run
from fastcurl.rewards import plain_accuracy_reward


@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    fake = FakeHub()
    huggingface_hub.set_client_factory(fake.client)
    huggingface_hub.close_session()
    yield fake
    huggingface_hub.set_client_factory(lambda: __import__("httpx2").Client())
    huggingface_hub.close_session()


TOKEN = "hf_FakeTokenForTheTests0123456789"


def two_stage_run(tiny_model_path, tmp_path, **kwargs):
    stages = [
        StageConfig(name="L1-8", dataset="synthetic", dataset_kwargs={"num_problems": 32}, segment="L1",
                    max_completion_length=8, num_generations=4, prompts_per_rollout_step=2, rollout_steps=1),
        StageConfig(name="L3-16", dataset="synthetic", dataset_kwargs={"num_problems": 32}, segment="L3",
                    max_completion_length=16, num_generations=4, prompts_per_rollout_step=2, rollout_steps=1),
    ]
    args = FastCuRLConfig(output_dir=str(tmp_path / "run"), use_cpu=True, report_to="none", logging_steps=1,
                          save_strategy="steps", save_steps=1, per_device_train_batch_size=8, seed=0,
                          stages=stages, disable_tqdm=True, push_to_hub=True, hub_model_id="me/tiny-curriculum",
                          hub_token=TOKEN, **kwargs)
    trainer = CurriculumGRPOTrainer(model=tiny_model_path, reward_funcs=plain_accuracy_reward, args=args)
    trainer.train()
    return trainer


def test_two_stage_run_pushes_stage_branches_and_main(tiny_model_path, tmp_path, hub):
    trainer = two_stage_run(tiny_model_path, tmp_path)
    assert [(c["branch"], c["message"]) for c in hub.commits] == [
        ("stage-1-L1-8", "fastcurl stage 1/2 'L1-8': updates 1-1"),
        ("stage-2-L3-16", "fastcurl stage 2/2 'L3-16': updates 2-2"),
        ("main", "fastcurl: final model after 2 updates"),
    ]
    assert {c["repo"] for c in hub.commits} == {"me/tiny-curriculum"}
    assert {"stage-1-L1-8", "stage-2-L3-16"} <= hub.branches["me/tiny-curriculum"]
    for commit in hub.commits:
        files = set(commit["files"])
        assert {"model.safetensors", "config.json", "README.md"} <= files
        assert not any(f.startswith(("checkpoint-", "stage-", ".staging")) or "optimizer" in f for f in files)
    main_files = set(hub.commits[-1]["files"])
    assert "run_manifest.json" in main_files and "stage_manifest.json" in main_files
    card = hub.commits[-1]["files"]["README.md"].decode()
    assert "| 2 | `stage-2-L3-16` | synthetic [L3] |" in card and 'revision="stage-1-L1-8"' in card
    assert "- fastcurl" in card and "- grpo" in card and "- curriculum" in card and "arXiv:2503.17287" in card
    assert all(r.ok for r in trainer.run_callback(HubPushCallback).pusher.results)
    assert (tmp_path / "run" / "checkpoint-2" / "optimizer.pt").exists()  # stays local


def test_failed_upload_is_retried_then_reported_and_local_files_stay(tiny_model_path, tmp_path, hub, capsys):
    from fastcurl.run.hub import HubPusher

    trainer = two_stage_run(tiny_model_path, tmp_path)
    run = tmp_path / "run"
    hub.commits.clear()
    hub.fail_commits = 1  # one 503 (retried by huggingface_hub's own backoff), then success
    pusher = HubPusher("me/again", str(run), token="hf_fake")
    pusher.push(run / "stage-1-L1-8", "stage-1-L1-8", "retry me", wait=True)
    commits = [r for r in hub.requests if r == ("POST", "/api/models/me/again/commit/stage-1-L1-8")]
    assert pusher.results[0].ok and len(commits) == 2 and hub.commits[-1]["message"] == "retry me"
    hub.fail_status, hub.fail_commits = 400, 10  # a client error: not worth retrying, reported at once
    pusher.push(run / "stage-2-L3-16", "stage-2-L3-16", "fail me", wait=True)
    failed = pusher.results[1]
    assert not failed.ok and "BadRequestError" in failed.error
    commits = [r for r in hub.requests if r == ("POST", "/api/models/me/again/commit/stage-2-L3-16")]
    assert len(commits) == 1
    out = capsys.readouterr().out
    assert "could not push" in out and f"fastcurl push {run} --repo_id me/again" in out
    assert (run / "stage-2-L3-16" / "model.safetensors").exists()
    assert trainer.state.global_step == 2


def test_transient_errors_before_the_upload_are_retried(tmp_path, hub, monkeypatch):
    """huggingface_hub retries the upload and the commit; fastcurl retries the repository, refs and branch
    requests before them on the same errors, and fails at once on a client error."""
    import fastcurl.run.hub as hub_module

    monkeypatch.setattr(hub_module, "RETRY_WAITS", (0.01, 0.01))
    folder = tmp_path / "run" / "stage-1-x"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    requests = {"/api/repos/create": "POST", "/api/models/me/flaky/refs": "GET",
                "/api/models/me/flaky/branch/stage-1-x": "POST"}
    hub.fail_requests = {path: (503, 1) for path in requests}
    hub.fail_requests["/api/models/me/flaky/refs"] = (429, 2)
    pusher = hub_module.HubPusher("me/flaky", str(tmp_path / "run"), token="hf_fake")
    pusher.push(folder, "stage-1-x", "flaky", wait=True)
    assert pusher.results[0].ok, pusher.results[0].error
    assert [hub.requests.count((method, path)) for path, method in requests.items()] == [2, 3, 2]
    assert hub.commits[-1]["branch"] == "stage-1-x"

    hub.requests.clear()
    hub.fail_requests = {"/api/models/me/flaky/branch/stage-2-x": (403, 1)}
    pusher.push(folder, "stage-2-x", "refused", wait=True)
    assert not pusher.results[1].ok and "403" in pusher.results[1].error
    assert hub.requests.count(("POST", "/api/models/me/flaky/branch/stage-2-x")) == 1
    hub.requests.clear()
    hub.fail_requests = {"/api/models/me/flaky/refs": (503, 5)}  # more than the retries
    pusher.push(folder, "stage-3-x", "gone", wait=True)
    assert not pusher.results[2].ok and hub.requests.count(("GET", "/api/models/me/flaky/refs")) == 3


def test_existing_branch_of_another_run_is_not_overwritten(tiny_model_path, tmp_path, hub):
    hub.existing = {"stage-1-L1-8"}
    trainer = two_stage_run(tiny_model_path, tmp_path)
    pushed = [c["branch"] for c in hub.commits]
    assert "stage-1-L1-8" not in pushed and "stage-2-L3-16" in pushed and "main" in pushed
    refused = [r for r in trainer.run_callback(HubPushCallback).pusher.results if not r.ok]
    assert len(refused) == 1 and "not pushed by this run" in refused[0].error


def test_push_command_pushes_an_existing_run(tiny_model_path, tmp_path, hub):
    two_stage_run(tiny_model_path, tmp_path)
    hub.commits.clear()
    results = push_run(tmp_path / "run", "me/pushed-later", token="hf_fake")
    assert [r.branch for r in results] == ["stage-1-L1-8", "stage-2-L3-16", "main"] and all(r.ok for r in results)
    assert {c["repo"] for c in hub.commits} == {"me/pushed-later"}


def test_model_card_from_manifests(tiny_model_path, tmp_path, hub):
    two_stage_run(tiny_model_path, tmp_path)
    card = model_card(tmp_path / "run", "me/card", eval_results={"aime2024": {"pass@1": 0.25}})
    assert card.data.library_name == "transformers" and card.data.base_model == tiny_model_path
    card = str(card)
    assert card.startswith("---\n") and "\nlibrary_name: transformers\n" in card and "\nbase_model: " in card
    assert "| 1 | `stage-1-L1-8` | synthetic [L1] |" in card and "| aime2024 | 25.0 |" in card
    assert "mean_reward" in card and "@article{song2025fastcurl" in card


def test_model_card_of_a_manifest_without_the_plan(tmp_path):
    """Runs written before the manifest kept the plan: unnamed stages are named by the plan's rule."""
    stage = {"segment": "L2", "max_completion_length": 16384, "num_generations": 8, "rollout_steps": 2}
    config = {"stages": [{**stage, "name": None}, {**stage, "segment": "L3", "name": None}, {**stage, "name": None}]}
    (tmp_path / "run_manifest.json").write_text(json.dumps({"model": "base", "config": config}))
    card = str(model_card(tmp_path, "me/old"))
    rows = [line.split("`")[1] for line in card.splitlines() if line.startswith("| ") and "`stage-" in line]
    assert rows == ["stage-1-L2-16k", "stage-2-L3-16k", "stage-3-L2-16k-2"]
    assert 'revision="stage-1-L2-16k"' in card and "None" not in card.split("## Loading")[0].split("Settings")[0]


def test_push_cli(tiny_model_path, tmp_path, hub, capsys):
    from fastcurl.cli import main

    two_stage_run(tiny_model_path, tmp_path)
    hub.commits.clear()
    main(["push", str(tmp_path / "run"), "--repo_id", "me/from-cli", "--token", "hf_fake"])
    out = capsys.readouterr().out
    assert "me/from-cli@stage-1-L1-8: pushed" in out and "me/from-cli@main: pushed" in out
    assert [c["branch"] for c in hub.commits] == ["stage-1-L1-8", "stage-2-L3-16", "main"]
    with pytest.raises(SystemExit) as stopped:  # bad input: one error line and exit 2, no traceback
        main(["push", str(tmp_path), "--repo_id", "me/nothing"])
    assert stopped.value.code == 2 and "is it a fastcurl run" in capsys.readouterr().err


def test_no_pushed_file_holds_the_token_and_a_file_that_does_is_refused(tiny_model_path, tmp_path, hub):
    two_stage_run(tiny_model_path, tmp_path)
    assert (tmp_path / "run" / "training_args.bin").exists()  # pickled arguments, with the token: stays local
    for commit in hub.commits:
        assert "training_args.bin" not in commit["files"] and not any(n.startswith(".") for n in commit["files"])
        for name, content in commit["files"].items():
            assert TOKEN.encode() not in content, (commit["branch"], name)
    hub.commits.clear()
    (tmp_path / "run" / "stage-1-L1-8" / "notes.txt").write_text(f"pushed with {TOKEN}")
    before = len(hub.requests)
    results = push_run(tmp_path / "run", "me/leak", token=TOKEN)
    refused = results[0]
    assert not refused.ok and "notes.txt contains the Hub token" in refused.error
    assert ("POST", "/api/models/me/leak/commit/stage-1-L1-8") not in hub.requests[before:]  # not even tried
    assert [c["branch"] for c in hub.commits] == ["stage-2-L3-16", "main"]


def test_a_cli_run_whose_pushes_are_refused_exits_1_and_leaves_no_staging_file(tiny_model_path, tmp_path):
    """A real `fastcurl train` process against an endpoint that refuses every request (a revoked token): the run
    is saved, the command names the failed pushes and how to retry, and exits 1 instead of 0. The final model
    is written once (the push saved it before the CLI would), so no hard-link staging file is left behind."""
    import os
    import subprocess
    import sys
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from pathlib import Path

    import yaml

    class Refuses(BaseHTTPRequestHandler):
        def _refuse(self):
            body = b'{"error": "Invalid credentials in Authorization header"}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_HEAD = _refuse

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuses)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    run = tmp_path / "run"
    recipe = tmp_path / "run.yaml"
    recipe.write_text(yaml.safe_dump({
        "model_name_or_path": tiny_model_path, "output_dir": str(run), "use_cpu": True, "report_to": "none",
        "per_device_train_batch_size": 4, "push_to_hub": True, "hub_model_id": "me/run", "save_strategy": "no",
        "stages": [{"name": "only", "dataset": "synthetic", "dataset_kwargs": {"num_problems": 16},
                    "max_completion_length": 8, "num_generations": 4, "prompts_per_rollout_step": 2,
                    "rollout_steps": 1}]}))
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "HF_HUB_OFFLINE": "0", "HF_TOKEN": TOKEN,
           "HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}"}
    try:
        result = subprocess.run([sys.executable, "-m", "fastcurl.cli", "train", "--config", str(recipe)],
                                capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    finally:
        server.shutdown()
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "2 Hub push(es) failed (stage-1-only, main)" in result.stderr
    assert f"fastcurl push {run} --repo_id me/run" in result.stderr
    assert (run / "model.safetensors").is_file() and (run / "stage-1-only" / "model.safetensors").is_file()
    assert sorted(p.name for p in run.rglob("*.tmp")) == []
