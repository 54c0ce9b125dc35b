"""Dynamic sampling (issue 16, item 2): a `dynamic_sampling` stage trains only on groups whose rewards differ,
generates more rounds of prompts for them (never more than `max_generation_rounds`), keeps groups whole, and
stays a pure addition (a stage without it generates once). The two-rank run is in test_multiprocess.py, server
mode in test_vllm_server.py."""

from __future__ import annotations

import pytest
import torch

from fastcurl import CurriculumGRPOTrainer, FastCuRLConfig, StageConfig
from fastcurl.curriculum.dynamic_sampling import draw_prompts, group_has_spread, merge_groups
from fastcurl.curriculum.plan import format_plan, plan_curriculum, resolve_plan
from fastcurl.data import make_synthetic_math

GROUP = 4


def mostly_flat_reward(prompts, completions, **kwargs):
    """Every rollout right for three prompts in four (a flat group); alternating 0/1 for the others."""
    return [1.0 if len(p[-1]["content"]) % 4 else float(i % 2) for i, p in enumerate(prompts)]


class RecordingTrainer(CurriculumGRPOTrainer):
    """Records what each rollout step trains on: the merged generation batch."""

    batches: list[dict] = []

    def _generate_and_score_completions(self, inputs):
        batch = super()._generate_and_score_completions(inputs)
        if self.model.training:
            self.batches.append({"step": self.state.global_step, "stage": self.curriculum.stage_index,
                                 **{k: v.clone() for k, v in batch.items() if isinstance(v, torch.Tensor)}})
        return batch


def run(model: str, tmp_path, rounds: int, dynamic: tuple[bool, bool] = (True, False)) -> tuple[RecordingTrainer, list[dict]]:
    stage = {"dataset": "synthetic", "dataset_kwargs": {"num_problems": 64}, "num_generations": GROUP,
             "prompts_per_rollout_step": 4, "rollout_steps": 3, "max_completion_length": 8,
             "max_generation_rounds": rounds}
    stages = [StageConfig(name="dynamic", dynamic_sampling=dynamic[0], **stage),
              StageConfig(name="plain", dynamic_sampling=dynamic[1], **stage)]
    args = FastCuRLConfig(output_dir=str(tmp_path / "run"), use_cpu=True, report_to="none", logging_steps=1,
                          save_strategy="no", per_device_train_batch_size=8, learning_rate=1e-3, seed=0, beta=0.0,
                          stages=stages, disable_tqdm=True)
    RecordingTrainer.batches = []
    trainer = RecordingTrainer(model=model, reward_funcs=mostly_flat_reward, args=args)
    trainer.train()
    return trainer, RecordingTrainer.batches


def spread_flags(batch: dict) -> list[bool]:
    return group_has_spread(batch["advantages"], GROUP).tolist()


def test_only_groups_with_a_spread_train_and_the_rounds_stay_bounded(tiny_model_path, tmp_path):
    trainer, batches = run(tiny_model_path, tmp_path, rounds=4)
    logs = [h for h in trainer.state.log_history if "dynamic_sampling/rounds" in h]
    dynamic = [b for b in batches if b["stage"] == 0]
    assert len(dynamic) == 3 and len(logs) == 3  # stage 1 only: stage 2 logs no dynamic sampling
    for batch, log in zip(dynamic, logs, strict=True):
        flags = spread_flags(batch)
        assert len(flags) == 4 and batch["completion_ids"].size(0) == 4 * GROUP  # the step keeps its size
        assert 1 <= log["dynamic_sampling/rounds"] <= 4
        assert log["dynamic_sampling/groups_with_gradient"] == sum(flags) / 4
        assert flags == sorted(flags, reverse=True)  # groups with a spread first, flat ones only to fill
        if log["dynamic_sampling/rounds"] < 4:
            assert all(flags)  # it stopped early because every group carries a gradient
        for group in batch["prompt_ids"].view(4, GROUP, -1):
            assert (group == group[0]).all()  # a group's rows answer one prompt: kept whole
        width = batch["completion_mask"].sum(1)
        assert int(batch["num_items_in_batch"]) == int(width.sum())  # recounted for the merged batch
    assert any(log["dynamic_sampling/rounds"] > 1 for log in logs)  # a quarter of the groups have a spread
    assert all(0 < log["dynamic_sampling/kept_share"] < 1 for log in logs)
    plain = [b for b in batches if b["stage"] == 1]
    # without dynamic sampling, flat groups stay in the batch (three prompts in four give all-1 rewards)
    assert len(plain) == 3 and not all(all(spread_flags(b)) for b in plain)


def test_one_round_fills_with_flat_groups_and_keeps_the_batch_size(tiny_model_path, tmp_path):
    trainer, batches = run(tiny_model_path, tmp_path, rounds=1)
    logs = [h for h in trainer.state.log_history if "dynamic_sampling/rounds" in h]
    assert [log["dynamic_sampling/rounds"] for log in logs] == [1.0, 1.0, 1.0]
    for batch in batches:
        assert batch["completion_ids"].size(0) == 4 * GROUP


def test_merge_pads_prompts_left_and_completions_right():
    first = {"prompt_ids": torch.tensor([[5, 6]] * 2), "prompt_mask": torch.ones(2, 2, dtype=torch.long),
             "completion_ids": torch.tensor([[7]] * 2), "completion_mask": torch.ones(2, 1, dtype=torch.long),
             "old_per_token_logps": torch.full((2, 1), -1.0), "advantages": torch.tensor([1.0, -1.0]),
             "num_items_in_batch": torch.tensor(2)}
    second = {"prompt_ids": torch.tensor([[4, 5, 6]] * 2), "prompt_mask": torch.ones(2, 3, dtype=torch.long),
              "completion_ids": torch.tensor([[8, 9]] * 2), "completion_mask": torch.ones(2, 2, dtype=torch.long),
              "old_per_token_logps": torch.full((2, 2), -2.0), "advantages": torch.tensor([0.5, -0.5]),
              "num_items_in_batch": torch.tensor(4)}
    merged = merge_groups([first, second], [(1, 0), (0, 0)], 2, pad_token_id=0)
    assert merged["prompt_ids"].tolist() == [[4, 5, 6], [4, 5, 6], [0, 5, 6], [0, 5, 6]]
    assert merged["prompt_mask"].tolist() == [[1, 1, 1]] * 2 + [[0, 1, 1]] * 2
    assert merged["completion_ids"].tolist() == [[8, 9]] * 2 + [[7, 0]] * 2
    assert merged["completion_mask"].tolist() == [[1, 1]] * 2 + [[1, 0]] * 2
    assert merged["old_per_token_logps"].tolist() == [[-2.0, -2.0]] * 2 + [[-1.0, 0.0]] * 2
    assert merged["advantages"].tolist() == [0.5, -0.5, 1.0, -1.0] and "num_items_in_batch" not in merged


def test_extra_prompts_are_whole_groups_the_same_draw_on_every_rank():
    data = make_synthetic_math(num_problems=10)
    ranks = [draw_prompts(data, 3, GROUP, seed=7, process_index=r, num_processes=2) for r in range(2)]
    for rows in ranks:
        assert len(rows) == 3 * GROUP
        assert all(rows[i]["prompt"] == rows[i - i % GROUP]["prompt"] for i in range(len(rows)))
    firsts = [rows[g * GROUP]["prompt"][-1]["content"] for rows in ranks for g in range(3)]
    assert len(set(firsts)) == 6  # the ranks draw different prompts of one permutation
    again = draw_prompts(data, 3, GROUP, seed=7, process_index=1, num_processes=2)
    assert again == ranks[1]  # seeded: a resumed run draws the same


def test_the_plan_bounds_tokens_by_the_rounds_and_rejects_split_groups():
    stage = StageConfig(name="d", dataset="synthetic", rollout_steps=2, prompts_per_rollout_step=3,
                        num_generations=4, max_completion_length=10, dynamic_sampling=True, max_generation_rounds=5)
    (row,) = plan_curriculum(resolve_plan([stage], 4, 1, 1), [None])
    assert row.max_generated_tokens == 2 * 3 * 4 * 10 * 5
    assert "dynamic sampling: up to 5 generation rounds" in format_plan([row], 1)
    with pytest.raises(ValueError, match=r"prompts_per_rollout_step \(3\) must be a multiple of the process count"):
        resolve_plan([stage], 2, 2, 1)
    with pytest.raises(ValueError, match="max_generation_rounds must be a positive integer"):
        FastCuRLConfig(output_dir="/tmp/unused", use_cpu=True, report_to="none",
                       stages=[StageConfig(dataset="synthetic", rollout_steps=1, max_generation_rounds=0)])
