"""Push a curriculum to the Hugging Face Hub: one branch per stage, the final model on ``main``, a model card.

Stage ``k`` of a run goes to the branch ``stage-k-<name>`` of one repository, so every stage's policy is a
revision users can load (``from_pretrained(repo, revision="stage-1-L1-8k")``). Pushes run in huggingface_hub's
background worker (``HfApi.run_as_future``, one at a time, in order). huggingface_hub retries transient errors
(429 and 5xx, dropped connections) of the upload and the commit; it does not retry the three small requests
before them (create the repository, list its branches, create a branch), so :func:`retry_transient` retries
those on the same errors with the same backoff (its ``http_backoff`` retries a raw HTTP request, not an ``HfApi``
method: using it would mean rewriting those three requests). A push that still fails is reported with the command
that pushes it later; it never changes the weights on disk. Optimizer state, pickled arguments (``training_args.bin``
may hold a token) and staging files never leave the machine, and every file is scanned for the Hub token before it
is uploaded. A branch that already exists and was not pushed by this run is left alone unless
``overwrite_branches`` is set.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..curriculum.names import resolve_stage_names, stage_run_name

logger = logging.getLogger(__name__)

# Training state that stays local: optimizer, scheduler, RNG, step checkpoints, the staging area.
LOCAL_ONLY = ["optimizer.pt", "scheduler.pt", "rng_state*.pth", "scaler.pt", "checkpoint-*/**", ".staging/**",
              "stage-*/**", "global_step*/**", "runs/**", "*.jsonl", "hub_pushes.json", "training_args.bin",
              ".vllm-weights/**", "fastcurl_complete.json", "*.tmp", ".*", ".*/**", "*.lock"]
TAGS = ["fastcurl", "grpo", "curriculum", "trl", "math", "reasoning"]
CITATION = """@article{song2025fastcurl,
  title   = {FastCuRL: Curriculum Reinforcement Learning with Stage-wise Context Scaling for Efficient Training
             R1-like Reasoning Models},
  author  = {Song, Mingyang and Zheng, Mao and Li, Zheng and Yang, Wenjie and Luo, Xuan and Pan, Yue and
             Zhang, Feng},
  journal = {arXiv preprint arXiv:2503.17287},
  year    = {2025}
}"""


def stage_branch(index: int, name: str) -> str:
    """The branch for stage ``index`` (0-based): ``stage-1-L1-8k``, the same name as its local directory."""
    return stage_run_name(index, name)


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def planned_stages(run: dict[str, Any], finished: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every planned stage's ``index``, ``name``, ``run_name`` and ``settings``, as the run's plan named them.

    ``run_manifest.json`` keeps the plan; a manifest written before it did gives the recipe's stages, named here
    by the same rule (``curriculum.names``), or, without either, the finished stages' records.
    """
    from types import SimpleNamespace

    if run.get("plan"):
        return run["plan"]
    settings = (run.get("config") or {}).get("stages") or [s["settings"] for s in finished]
    names = resolve_stage_names([SimpleNamespace(name=s.get("name"), segment=s.get("segment"),
                                                 max_completion_length=s.get("max_completion_length"))
                                 for s in settings])
    return [{"index": i, "name": name, "run_name": stage_run_name(i, name), "settings": {**s, "name": name}}
            for i, (s, name) in enumerate(zip(settings, names, strict=True))]


def model_card(run_dir: str | Path, repo_id: str, eval_results: dict[str, Any] | None = None) -> Any:
    """The pushed repository's card (a ``huggingface_hub.ModelCard``; ``str(card)`` is its README.md), from the
    run's manifests."""
    from huggingface_hub import ModelCard, ModelCardData

    run_dir = Path(run_dir)
    run = _read(run_dir / "run_manifest.json")
    stages = _read(run_dir / "stage_manifest.json").get("stages", [])
    config = run.get("config", {})
    base = run.get("model") or config.get("model_name_or_path") or "unknown"
    rewards = config.get("reward_funcs") or ["fastcurl.rewards.accuracy_reward"]
    planned = planned_stages(run, stages)
    card_data = ModelCardData(library_name="transformers", base_model=None if base == "unknown" else base, tags=TAGS)
    lines = [
        f"# {repo_id.split('/')[-1]}",
        "",
        f"`{base}` trained with a FastCuRL-style curriculum ([fastcurl](https://github.com/fastcurl/fastcurl)): "
        "GRPO in stages of growing context length on problems segmented by prompt length.",
        "",
        "## Curriculum",
        "",
        "| stage | revision | data | problems | max completion tokens | rollouts | rollout steps | updates |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by_index = {s["index"]: s for s in stages}
    for planned_stage in planned:
        i = planned_stage["index"]
        record = by_index.get(i, {})
        settings = record.get("settings", planned_stage["settings"])
        data = f"{settings.get('dataset') or 'train_dataset'}"
        if settings.get("segment"):
            data += f" [{settings['segment']}]"
        updates = (f"{record['first_global_step']}-{record['last_global_step']}" if record else "not run")
        lines.append(
            f"| {i + 1} | `{planned_stage['run_name']}` | {data} | {record.get('dataset_size', '?')} | "
            f"{settings.get('max_completion_length')} | {settings.get('num_generations')} | "
            f"{settings.get('rollout_steps')} | {updates} |"
        )
    settings_text = []
    from ..curriculum.stages import STAGE_OVERRIDABLE_FIELDS

    overridden = [k for s in planned for k in (s["settings"].get("overrides") or {})]
    for key in dict.fromkeys(("learning_rate", "lr_scheduler_type", "warmup_ratio", "beta", "entropy_coef",
                              "epsilon", "epsilon_high", "temperature", *STAGE_OVERRIDABLE_FIELDS, "loss_type",
                              "num_iterations", "max_prompt_length", "bf16", "seed", *overridden)):
        if key in config:
            per_stage = [f"stage {s['index'] + 1}: {s['settings']['overrides'][key]}" for s in planned
                         if key in (s["settings"].get("overrides") or {})]
            settings_text.append(f"`{key}={config[key]}`" + (f" ({', '.join(per_stage)})" if per_stage else ""))
    accuracy = all(r.startswith("fastcurl.rewards.") and "accuracy" in r for r in rewards)
    lines += ["", "Settings (a stage's own value in brackets): " + ", ".join(settings_text) + ".",
              "", f"Reward: {', '.join(f'`{r}`' for r in rewards)}"
              + (" (1 when the final boxed answer is equivalent to the ground truth)." if accuracy else "."),
              "", "## Results per stage", ""]
    if stages:
        keys = sorted({k for s in stages for k in s.get("metrics", {})})
        lines += ["| stage | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for s in stages:
            values = [f"{s['metrics'][k]:.4g}" if k in s.get("metrics", {}) else "" for k in keys]
            lines.append(f"| {s['index'] + 1} {s['name']} | " + " | ".join(values) + " |")
    else:
        lines.append("No stage has finished yet.")
    if eval_results:
        lines += ["", "## Evaluation", "", "| benchmark | pass@1 |", "|---|---|"]
        for name, result in eval_results.items():
            if isinstance(result, dict) and result.get("pass@1") is not None:
                lines.append(f"| {name} | {100 * result['pass@1']:.1f} |")
    lines += [
        "", "## Loading a stage", "", "```python", "from transformers import AutoModelForCausalLM", "",
        f'final = AutoModelForCausalLM.from_pretrained("{repo_id}")',
    ]
    if planned:
        lines.append(f'stage_1 = AutoModelForCausalLM.from_pretrained("{repo_id}", '
                     f'revision="{planned[0]["run_name"]}")')
    lines += ["```", "", "## Citation", "", "```bibtex", CITATION, "```", ""]
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines))


# huggingface_hub's own backoff for uploads: these statuses and network errors, waits of 1, 2, 4, 8, 8 seconds.
TRANSIENT_STATUS = (408, 429, 500, 502, 503, 504)
RETRY_WAITS = (1.0, 2.0, 4.0, 8.0, 8.0)


def retry_transient(call: Any, *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, retried on a transient Hub error. Only for idempotent requests (the repository
    and branch are created with ``exist_ok``); any other error is raised at once."""
    import time

    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    for wait in (*RETRY_WAITS, None):
        try:
            return call(*args, **kwargs)
        except (HfHubHTTPError, httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError) as error:
            status = getattr(getattr(error, "response", None), "status_code", None)
            if wait is None or (isinstance(error, HfHubHTTPError) and status not in TRANSIENT_STATUS):
                raise
            logger.warning(f"Hub request failed ({type(error).__name__}, status {status}); retrying in {wait:.0f} s.")
            time.sleep(wait)


@dataclass
class PushResult:
    branch: str
    folder: str
    ok: bool
    error: str | None = None


class SecretInUploadError(RuntimeError):
    """A file about to be uploaded holds the Hub token."""


def files_to_upload(folder: Path) -> list[str]:
    """What ``upload_folder`` would send from ``folder`` with :data:`LOCAL_ONLY` left out (the same filter)."""
    from huggingface_hub.utils import filter_repo_objects

    relative = [str(p.relative_to(folder)) for p in sorted(folder.rglob("*")) if p.is_file()]
    return list(filter_repo_objects(relative, ignore_patterns=LOCAL_ONLY))


def find_secret(folder: Path, secrets: list[str]) -> str | None:
    """The first file to be uploaded from ``folder`` that contains one of ``secrets``, or None."""
    import mmap

    needles = [s.encode() for s in secrets if s and len(s) >= 8]
    if not needles:
        return None
    for name in files_to_upload(folder):
        path = folder / name
        if path.stat().st_size == 0:
            continue
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if any(data.find(needle) != -1 for needle in needles):
                return name
    return None


def require_online(repo_id: str, run_dir: str | Path, training: bool = True) -> None:
    """Refuse a push while huggingface_hub is offline: before a run trains for hours with every push bound to fail."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        later = (" or train with push_to_hub: false and push the run later with "
                 f"`fastcurl push {run_dir} --repo_id {repo_id}`") if training else ""
        raise ValueError(f"pushing to {repo_id}, but the Hub is offline here (HF_HUB_OFFLINE=1). Unset "
                         f"HF_HUB_OFFLINE where the Hub is reachable{later}.")


@dataclass
class HubPusher:
    """Pushes to one repository in huggingface_hub's background worker; outcomes kept in ``results``."""

    repo_id: str
    run_dir: str
    token: str | None = None
    private: bool | None = None
    overwrite_branches: bool = False
    results: list[PushResult] = field(default_factory=list)
    training: bool = True  # pushing during a run (False: `fastcurl push` of a finished one)

    def __post_init__(self) -> None:
        from huggingface_hub import HfApi, get_token

        require_online(self.repo_id, self.run_dir, training=self.training)
        self.api = HfApi(token=self.token)
        self._secrets = [t for t in (self.token, get_token()) if t]
        self._futures: list[Any] = []
        self._repo_ready = False
        self._ledger = Path(self.run_dir) / "hub_pushes.json"

    def _own_branches(self) -> set[str]:
        return set(_read(self._ledger).get("branches", []))

    def _remember(self, branch: str) -> None:
        ledger = _read(self._ledger)
        ledger["repo_id"] = self.repo_id
        ledger["branches"] = sorted(set(ledger.get("branches", [])) | {branch})
        from .manifests import write_json_atomic

        write_json_atomic(self._ledger, ledger)

    def push(self, folder: str | Path, branch: str, message: str, wait: bool = False) -> None:
        """Queue ``folder`` for ``branch`` (``main`` for the final model); ``wait`` blocks until it is done."""
        self._futures.append(self.api.run_as_future(self._push, Path(folder), branch, message))
        if wait:
            self.wait()

    def wait(self) -> list[PushResult]:
        """Block until every queued push has finished; failures are logged and kept in ``results``."""
        while self._futures:
            self.results.append(self._futures.pop(0).result())
        return self.results

    def _push(self, folder: Path, branch: str, message: str) -> PushResult:
        try:
            self._push_once(folder, branch, message)
        except (BranchExistsError, SecretInUploadError) as refused:
            logger.error(str(refused))
            print(f"[fastcurl] {refused}", flush=True)
            return PushResult(branch, str(folder), False, str(refused))
        except Exception as failure:  # huggingface_hub has retried what is worth retrying: reported, never raised
            error = f"{type(failure).__name__}: {failure}"
            report = (f"[fastcurl] could not push {folder} to {self.repo_id}@{branch} ({error}). The local copy is "
                      f"intact; push it later with: fastcurl push {self.run_dir} --repo_id {self.repo_id}")
            logger.error(report)
            print(report, flush=True)
            return PushResult(branch, str(folder), False, error)
        logger.info(f"Pushed {folder} to {self.repo_id}@{branch}.")
        return PushResult(branch, str(folder), True)

    def _push_once(self, folder: Path, branch: str, message: str) -> None:
        card = model_card(self.run_dir, self.repo_id, _read(Path(self.run_dir) / "eval_results.json"))
        card.save(folder / "README.md")
        leaked = find_secret(folder, self._secrets)
        if leaked is not None:
            raise SecretInUploadError(
                f"Not pushing {folder} to {self.repo_id}@{branch}: {leaked} contains the Hub token. Remove it from "
                "that file (or add the file to fastcurl.run.hub.LOCAL_ONLY) and push again with fastcurl push."
            )
        if not self._repo_ready:
            retry_transient(self.api.create_repo, self.repo_id, private=self.private, exist_ok=True)
            self._repo_ready = True
        if branch != "main":
            refs = {b.name for b in retry_transient(self.api.list_repo_refs, self.repo_id).branches}
            if branch in refs and branch not in self._own_branches() and not self.overwrite_branches:
                raise BranchExistsError(
                    f"Branch '{branch}' already exists in {self.repo_id} and was not pushed by this run; not "
                    f"overwriting it. Use another repo_id or set hub_overwrite_branches (--overwrite_branches)."
                )
            if branch not in refs:
                retry_transient(self.api.create_branch, self.repo_id, branch=branch, exist_ok=True)
                self._remember(branch)  # ours from now on, so a retry after a failed upload may use it
        self.api.upload_folder(repo_id=self.repo_id, folder_path=str(folder), revision=branch,
                               commit_message=message, ignore_patterns=LOCAL_ONLY)
        if branch != "main":
            self._remember(branch)


class BranchExistsError(RuntimeError):
    """A stage branch exists in the repository from another run."""


def push_run(run_dir: str | Path, repo_id: str, token: str | None = None, private: bool | None = None,
             overwrite_branches: bool = False) -> list[PushResult]:
    """Push a finished (or partial) run: each stage directory to its branch, the run's final model to ``main``."""
    run_dir = Path(run_dir)
    stages = _read(run_dir / "stage_manifest.json").get("stages", [])
    if not stages and not (run_dir / "config.json").exists():
        raise FileNotFoundError(f"{run_dir} holds no stage_manifest.json and no model: is it a fastcurl run?")
    pusher = HubPusher(repo_id, str(run_dir), token=token, private=private, overwrite_branches=overwrite_branches,
                       training=False)
    total = len(_read(run_dir / "run_manifest.json").get("config", {}).get("stages") or stages)
    for stage in stages:
        branch = stage.get("run_name") or stage_branch(stage["index"], stage["name"])  # as the plan named it
        folder = run_dir / branch
        if folder.is_dir():
            pusher.push(folder, branch,
                        f"fastcurl stage {stage['index'] + 1}/{total} '{stage['name']}': updates "
                        f"{stage['first_global_step']}-{stage['last_global_step']}")
    if (run_dir / "config.json").exists():
        pusher.push(run_dir, "main", "fastcurl: final model")
    return pusher.wait()
