"""A stand-in for the Hugging Face Hub's HTTP API, plugged under huggingface_hub's own HTTP client.

Tests use it through ``huggingface_hub.set_client_factory`` so every request our code makes goes through the
real ``HfApi`` and lands here: nothing of ours is mocked. It records each commit (branch, files, message).
"""

from __future__ import annotations

import base64
import json
from urllib.parse import unquote

import httpx2


class FakeHub:
    def __init__(self, fail_commits: int = 0, existing_branches: tuple[str, ...] = ()) -> None:
        self.requests: list[tuple[str, str]] = []
        self.repos: set[str] = set()
        self.branches: dict[str, set[str]] = {}
        self.commits: list[dict] = []
        self.fail_commits = fail_commits
        self.fail_status = 503
        self.existing = set(existing_branches)
        self.fail_requests: dict[str, tuple[int, int]] = {}  # path substring -> (status, how many times)

    def client(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self.handle))

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        path = unquote(request.url.path)
        self.requests.append((request.method, path))
        for part, (status, times) in list(self.fail_requests.items()):
            if part in path and times > 0:
                self.fail_requests[part] = (status, times - 1)
                return httpx2.Response(status, json={"error": "request failed (fake hub)"})
        if path == "/api/repos/create":
            body = json.loads(request.content)
            repo = f"{body.get('organization') or 'user'}/{body['name']}" if "/" not in body["name"] else body["name"]
            self.repos.add(repo)
            self.branches.setdefault(repo, {"main"} | self.existing)
            return httpx2.Response(200, json={"url": f"https://huggingface.co/{repo}", "name": repo})
        if path == "/api/validate-yaml":
            return httpx2.Response(200, json={"errors": [], "warnings": []})
        parts = path.split("/")
        if len(parts) >= 5 and parts[1] == "api" and parts[2] == "models":
            repo, action, rest = f"{parts[3]}/{parts[4]}", parts[5] if len(parts) > 5 else "", parts[6:]
            branches = self.branches.setdefault(repo, {"main"} | self.existing)
            if action == "refs":
                return httpx2.Response(200, json={"branches": [{"name": b, "ref": f"refs/heads/{b}",
                                                                "targetCommit": "0" * 40} for b in sorted(branches)],
                                                  "converts": [], "tags": []})
            if action == "branch":
                branches.add("/".join(rest))
                return httpx2.Response(200, json={})
            if action == "preupload":
                files = json.loads(request.content)["files"]
                return httpx2.Response(200, json={"files": [{"path": f["path"], "uploadMode": "regular",
                                                             "shouldIgnore": False} for f in files]})
            if action == "commit":
                branch = "/".join(rest)
                if self.fail_commits > 0:
                    self.fail_commits -= 1
                    return httpx2.Response(self.fail_status, json={"error": "upload failed (fake hub)"})
                lines = [json.loads(line) for line in request.content.decode().splitlines() if line.strip()]
                header = next(x["value"] for x in lines if x["key"] == "header")
                files = {x["value"]["path"]: base64.b64decode(x["value"]["content"]) for x in lines
                         if x["key"] == "file"}
                self.commits.append({"repo": repo, "branch": branch, "message": header["summary"], "files": files})
                return httpx2.Response(200, json={"commitUrl": f"https://huggingface.co/{repo}/commit/abc",
                                                  "commitOid": "a" * 40, "pullRequestUrl": None})
        return httpx2.Response(404, json={"error": f"fake hub: no route for {request.method} {path}"})
