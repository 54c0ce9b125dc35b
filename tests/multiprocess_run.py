"""A two-stage curriculum under `accelerate launch` (DDP or DeepSpeed ZeRO-2 on CPU), recording every rank.

Writes ``<out>/rank-<r>.jsonl``: per update, the rank, global step, stage, completion cap, the prompts this rank
scored and checksums of the policy and the reference at each stage start.

    accelerate launch --cpu --num_processes 2 tests/multiprocess_run.py MODEL OUT [--mismatch] [--save]
        [--resume] [--slow] [--adaptive] [--dynamic] [--rank0-advances]

``--adaptive`` gives stage 1 an ``advance_when`` rule (up to 4 rollout steps, ends after 2); ``--rank0-advances`` a
``should_advance`` subclass that only rank 0 says yes to, after stage 1's first update; ``--dynamic`` gives
stage 1 dynamic sampling (up to 3 rounds) with rewards flat for three prompts in four, and records each rank's
trained groups; ``--save`` writes a checkpoint at every update, ``--resume`` continues from the newest complete one, ``--slow``
makes every reward call take a second (so a test can signal a rank mid-run); each reward record has the pid.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from fastcurl import CurriculumCallback, CurriculumGRPOTrainer, FastCuRLConfig, StageConfig


def checksum(model) -> float:
    return float(sum(p.detach().double().sum() for p in model.parameters()))


def main() -> None:
    model_path, out = sys.argv[1], Path(sys.argv[2])
    rank = int(os.environ.get("RANK", "0"))
    records = out / f"rank-{rank}.jsonl"
    num_problems = 48 + (1 if "--mismatch" in sys.argv and rank == 1 else 0)

    def recorded(prompts, completions, trainer_state, **kwargs):
        if "--slow" in sys.argv:
            time.sleep(1.0)
        with records.open("a") as f:
            f.write(json.dumps({"kind": "reward", "rank": rank, "pid": os.getpid(),
                                "step": trainer_state.global_step + 1,
                                "stage": trainer.curriculum.stage_index,
                                "cap": trainer.max_completion_length,
                                "prompts": [p[-1]["content"] for p in prompts],
                                "lengths": [len(c[0]["content"]) for c in completions]}) + "\n")
        if "--dynamic" in sys.argv:
            return [1.0 if len(p[-1]["content"]) % 4 else float(i % 2) for i, p in enumerate(prompts)]
        return [float(i % 2) for i in range(len(completions))]

    class RecordingTrainer(CurriculumGRPOTrainer):
        def _generate_and_score_completions(self, inputs):
            batch = super()._generate_and_score_completions(inputs)
            groups = batch["prompt_ids"].view(-1, 4, batch["prompt_ids"].size(1))
            advantages = batch["advantages"].view(-1, 4)
            with records.open("a") as f:
                f.write(json.dumps({"kind": "batch", "rank": rank, "step": self.state.global_step + 1,
                                    "stage": self.curriculum.stage_index,
                                    "whole": bool((groups == groups[:, :1]).all()),
                                    "spread": ((advantages.amax(1) - advantages.amin(1)) > 1e-6).tolist(),
                                    "rounds": self._metrics["train"]["dynamic_sampling/rounds"][-1:]}) + "\n")
            return batch

    class RankZeroAdvances(CurriculumCallback):
        """A rule that reads a per-rank value: only rank 0 wants to leave stage 1, after its first update."""

        def should_advance(self, state):
            return super().should_advance(state) or (rank == 0 and self.stage_index == 0
                                                     and self.updates_done(state) >= 1)

    if "--rank0-advances" in sys.argv:
        RecordingTrainer.curriculum_class = RankZeroAdvances

    class StageStart(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            start = trainer.curriculum.stage_start_steps[trainer.curriculum.stage_index]
            if state.global_step == start:
                policy = trainer.accelerator.unwrap_model(trainer.model_wrapped)
                with records.open("a") as f:
                    f.write(json.dumps({"kind": "stage_start", "rank": rank, "step": state.global_step,
                                        "stage": trainer.curriculum.stage_index,
                                        "grad_accum": trainer.args.gradient_accumulation_steps,
                                        "engine_steps": getattr(trainer.model_wrapped, "global_steps", None),
                                        "policy": checksum(policy), "reference": checksum(trainer.ref_model)})
                            + "\n")

    stage = {"dataset": "synthetic", "dataset_kwargs": {"num_problems": num_problems}, "num_generations": 4}
    stages = [
        StageConfig(name="short", segment="L1", max_completion_length=8, prompts_per_rollout_step=4,
                    rollout_steps=2, dynamic_sampling="--dynamic" in sys.argv, **stage)
        if "--adaptive" not in sys.argv else
        # up to 4 rollout steps; ends after 2, once one logged clipped ratio (~1 with these caps) is above 0.5
        StageConfig(name="short", segment="L1", max_completion_length=8, prompts_per_rollout_step=4,
                    rollout_steps=4, min_rollout_steps=1,
                    advance_when={"any": [{"metric": "completions/clipped_ratio", "above": 0.5}]}, **stage),
        # twice the prompts per update: gradient accumulation changes at the boundary
        StageConfig(name="long", segment="L3", max_completion_length=16, prompts_per_rollout_step=8,
                    rollout_steps=2, **stage),
    ]
    args = FastCuRLConfig(output_dir=str(out), use_cpu=True, report_to="none", logging_steps=1,
                          save_strategy="steps" if "--save" in sys.argv else "no", save_steps=1,
                          per_device_train_batch_size=4, learning_rate=1e-3,
                          lr_scheduler_type="constant", seed=0, beta=0.05, stages=stages, disable_tqdm=True)
    trainer = RecordingTrainer(model=model_path, reward_funcs=recorded, args=args, callbacks=[StageStart()])
    trainer.train(resume_from_checkpoint=True if "--resume" in sys.argv else None)
    with records.open("a") as f:
        f.write(json.dumps({"kind": "done", "rank": rank, "step": trainer.state.global_step,
                            "stopped_by_signal": trainer.stopped_by_signal,
                            "engine_steps": getattr(trainer.model_wrapped, "global_steps", None),
                            "policy": checksum(trainer.accelerator.unwrap_model(trainer.model_wrapped))}) + "\n")
    trainer.accelerator.end_training()  # as the CLI does (the exit is made safe by fastcurl.run.gloo_exit)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
