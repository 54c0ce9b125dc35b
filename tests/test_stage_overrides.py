"""Every field on the per-stage list reaches the place TRL reads it from, at the stage boundary."""

from __future__ import annotations

from transformers import TrainerCallback

from fastcurl import STAGE_OVERRIDABLE_FIELDS, CurriculumGRPOTrainer, FastCuRLConfig, StageConfig
from fastcurl.data import make_synthetic_math

STAGE2 = {
    "beta": 0.2,
    "entropy_coef": 0.05,
    "learning_rate": 3e-3,
    "epsilon": 0.1,
    "epsilon_high": 0.3,
    "top_p": 0.9,
    "top_k": 7,
    "min_p": 0.05,
    "repetition_penalty": 1.1,
    "scale_rewards": "batch",
    "mask_truncated_completions": True,
    "per_device_train_batch_size": 2,
}


def reward(completions, **kwargs):
    return [float(len(c[0]["content"]) % 3) for c in completions]


class Probe(TrainerCallback):
    def __init__(self):
        self.trainer = None
        self.by_stage = {}
        self.micro_batches = {}

    def on_step_begin(self, args, state, control, **kwargs):
        t = self.trainer
        self.by_stage.setdefault(t.curriculum.stage_index, {
            "beta": t.beta,
            "entropy_coef": t.entropy_coef,
            "entropy_enabled": t._entropy_bonus_enabled,
            "learning_rate": [g["lr"] for g in t.optimizer.param_groups],
            "epsilon": t.epsilon_low,
            "epsilon_high": t.epsilon_high,
            "top_p": (t.top_p, t.generation_config.top_p, t.generation_kwargs["top_p"]),
            "top_k": (t.top_k, t.generation_config.top_k, t.generation_kwargs["top_k"]),
            "min_p": (t.min_p, t.generation_config.min_p, t.generation_kwargs["min_p"]),
            "repetition_penalty": (t.repetition_penalty, t.generation_config.repetition_penalty,
                                   t.generation_kwargs["repetition_penalty"]),
            "scale_rewards": t.scale_rewards,
            "mask_truncated_completions": t.mask_truncated_completions,
            "per_device_train_batch_size": (t._train_batch_size, args.per_device_train_batch_size),
        })


def test_every_overridable_field_takes_effect(tiny_model_path, tmp_path):
    assert set(STAGE2) == set(STAGE_OVERRIDABLE_FIELDS)
    stages = [
        StageConfig(name="a", rollout_steps=1, max_completion_length=6, num_generations=4, prompts_per_rollout_step=2),
        StageConfig(name="b", rollout_steps=2, max_completion_length=6, num_generations=4, prompts_per_rollout_step=2,
                    overrides=STAGE2),
        StageConfig(name="c", rollout_steps=1, max_completion_length=6, num_generations=4, prompts_per_rollout_step=2),
    ]
    args = FastCuRLConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", logging_steps=1,
                          save_strategy="no", per_device_train_batch_size=4, learning_rate=1e-3,
                          lr_scheduler_type="constant", beta=0.0, entropy_coef=0.0, stages=stages,
                          disable_tqdm=True, save_stage_checkpoints=False)
    probe = Probe()
    micro = []
    trainer = CurriculumGRPOTrainer(model=tiny_model_path, reward_funcs=reward, args=args,
                                    train_dataset=make_synthetic_math(16), callbacks=[probe])
    probe.trainer = trainer
    original = trainer.compute_loss

    def compute_loss(model, inputs, *a, **k):
        micro.append((trainer.curriculum.stage_index, inputs["completion_ids"].shape[0]))
        return original(model, inputs, *a, **k)

    trainer.compute_loss = compute_loss
    assert trainer.ref_model is not None  # built because stage b uses beta > 0, though the run's beta is 0
    trainer.train()
    a, b, c = probe.by_stage[0], probe.by_stage[1], probe.by_stage[2]
    assert (a["beta"], b["beta"], c["beta"]) == (0.0, 0.2, 0.0)
    assert (a["entropy_coef"], b["entropy_coef"], c["entropy_coef"]) == (0.0, 0.05, 0.0)
    assert b["entropy_enabled"]
    assert a["learning_rate"] == [1e-3] * len(a["learning_rate"]) and b["learning_rate"][0] == 3e-3
    assert c["learning_rate"][0] == 1e-3
    assert (b["epsilon"], b["epsilon_high"]) == (0.1, 0.3) and (c["epsilon"], c["epsilon_high"]) == (0.2, 0.2)
    for name in ("top_p", "top_k", "min_p", "repetition_penalty"):
        assert b[name] == (STAGE2[name],) * 3, name
        assert c[name] == a[name], name
    assert (a["scale_rewards"], b["scale_rewards"]) == ("group", "batch")
    assert (a["mask_truncated_completions"], b["mask_truncated_completions"]) == (False, True)
    assert a["per_device_train_batch_size"] == (4, 4) and b["per_device_train_batch_size"] == (2, 2)
    assert {size for stage, size in micro if stage == 1} == {2}
    assert {size for stage, size in micro if stage != 1} == {4}
    logs = [h for h in trainer.state.log_history if "loss" in h]
    by_stage = {}
    for h in logs:
        by_stage.setdefault(h["curriculum/stage"], []).append(h)
    assert all(h["learning_rate"] == 3e-3 for h in by_stage[1.0])
    assert all("kl" in h for h in by_stage[1.0]) and not any("kl" in h for h in by_stage[0.0])
