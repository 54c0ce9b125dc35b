#!/usr/bin/env bash
# GPU smoke run: the quickstart's two stages on one GPU (transformers generation, bf16), printing per-step time
# and generated tokens per second. Record the figures, with the device, in benchmarks/RESULTS.md.
#   bash scripts/gpu_smoke.sh [OUTPUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/gpu_smoke}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python -m fastcurl.cli train --config configs/quickstart_cpu.yaml --output_dir "$OUT" \
    --use_cpu false --bf16 true --torch_dtype bfloat16 --max_steps_per_stage 8 --disable_tqdm true \
    | tee "$OUT.log"
python - "$OUT.log" <<'PY'
import ast, re, sys
steps = [ast.literal_eval(line) for line in open(sys.argv[1]) if line.startswith("{'loss'")]
previous = 0.0
print(f"{'step':>4} {'stage':>5} {'seconds':>8} {'tokens/s':>9}")
for i, s in enumerate(steps, 1):
    tokens = float(s["num_tokens"]) - previous
    previous = float(s["num_tokens"])
    print(f"{i:>4} {int(float(s['curriculum/stage'])) + 1:>5} {float(s['step_time']):>8.2f} "
          f"{tokens / float(s['step_time']):>9.0f}")
PY
