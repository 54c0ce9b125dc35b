"""Per-step cost of CurriculumGRPOTrainer versus plain GRPOTrainer, and an in-process stage switch versus a restart.

1. Same tiny model, data and settings; the two trainers' steps are timed in interleaved repeats (A, B, A, B, ...)
   so drift hits both alike. Prints the median per-step time of each with its spread and the ratio (target <= 1.03).
2. A stage switch inside one process (what CurriculumGRPOTrainer does) versus how the original scripts move
   between stages: a new Python process that loads the model and builds a trainer again.

    python benchmarks/trainer_overhead.py [--repeats 7] [--steps 8]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import build_tiny_model  # noqa: E402
from transformers import TrainerCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from fastcurl import CurriculumGRPOTrainer, FastCuRLConfig, StageConfig  # noqa: E402
from fastcurl.data import make_synthetic_math  # noqa: E402


def reward(completions, **kwargs):
    return [float(len(c[0]["content"]) % 3) for c in completions]


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times, self._start = [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._start)


COMMON = dict(use_cpu=True, report_to="none", save_strategy="no", logging_steps=1, seed=0, disable_tqdm=True,
              per_device_train_batch_size=8, learning_rate=1e-4, lr_scheduler_type="constant")


def run_once(kind: str, model: str, data, steps: int, out: str) -> float:
    timer = StepTimer()
    if kind == "grpo":
        args = GRPOConfig(output_dir=out, max_steps=steps, num_generations=8, max_completion_length=32, **COMMON)
        trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=data, callbacks=[timer])
    else:
        stage = StageConfig(rollout_steps=steps, num_generations=8, max_completion_length=32,
                            prompts_per_rollout_step=1)
        args = FastCuRLConfig(output_dir=out, stages=[stage], save_stage_checkpoints=False, **COMMON)
        trainer = CurriculumGRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=data,
                                        callbacks=[timer])
    trainer.train()
    return statistics.median(timer.times[1:])  # the first step warms caches


def switch_in_process(model: str, data, out: str) -> float:
    stages = [StageConfig(name=f"s{i}", rollout_steps=1, num_generations=8, max_completion_length=8 * (i + 1),
                          prompts_per_rollout_step=1) for i in range(2)]
    args = FastCuRLConfig(output_dir=out, stages=stages, save_stage_checkpoints=False, **COMMON)
    trainer = CurriculumGRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=data)
    enter = trainer._enter_stage
    seconds = []

    def timed_enter(index, **kwargs):
        start = time.perf_counter()
        plan = enter(index, **kwargs)
        trainer.get_train_dataloader()
        seconds.append(time.perf_counter() - start)
        return plan

    trainer._enter_stage = timed_enter
    trainer.train()
    return seconds[1]


def switch_by_restart(model: str) -> float:
    code = (
        "import sys; sys.path.insert(0, 'tests');"
        "from trl import GRPOConfig, GRPOTrainer; from fastcurl.data import make_synthetic_math;"
        "r = lambda completions, **k: [0.0] * len(completions);"
        f"a = GRPOConfig(output_dir='{tempfile.mkdtemp()}', max_steps=1, num_generations=8, use_cpu=True,"
        " report_to='none', per_device_train_batch_size=8);"
        f"GRPOTrainer(model='{model}', reward_funcs=r, args=a, train_dataset=make_synthetic_math(16))"
    )
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=8)
    cli = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    model = str(build_tiny_model(work / "model"))
    data = make_synthetic_math(128, seed=0)
    per_step = {"grpo": [], "curriculum": []}
    for r in range(cli.repeats):
        for kind in ("grpo", "curriculum") if r % 2 == 0 else ("curriculum", "grpo"):
            per_step[kind].append(run_once(kind, model, data, cli.steps, str(work / f"{kind}{r}")))
    for kind, values in per_step.items():
        print(f"{kind:>10}: median step {statistics.median(values) * 1e3:.2f} ms "
              f"(min {min(values) * 1e3:.2f}, max {max(values) * 1e3:.2f}) over {len(values)} runs")
    ratio = statistics.median(per_step["curriculum"]) / statistics.median(per_step["grpo"])
    print(f"ratio curriculum / grpo per-step time: {ratio:.3f} (target <= 1.03)")
    in_process = statistics.median(switch_in_process(model, data, str(work / f"sw{i}")) for i in range(3))
    restart = statistics.median(switch_by_restart(model) for _ in range(3))
    print(f"stage switch in process: {in_process * 1e3:.1f} ms; new process + model reload: {restart * 1e3:.0f} ms; "
          f"ratio {restart / in_process:.0f}x (tiny model: a real 1.5B checkpoint reloads in tens of seconds)")


if __name__ == "__main__":
    main()
