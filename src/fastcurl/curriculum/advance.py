"""Adaptive stage advance: a stage says in its recipe when it is done, from metrics TRL already logs.

FastCuRL fixes each stage's length by hand (160/590/230/580 rollout steps) and names adaptive scheduling as future
work. The signals that say a stage is done are logged at every update: the clipped ratio (the model needs a longer
context), the share of flat groups (nothing left to learn), reward and entropy. A stage may declare::

    advance_when:
      any:                                   # or all:
        - {metric: completions/clipped_ratio, above: 0.3, window: 10}
        - {metric: reward, plateau: 0.01, window: 20}
    min_rollout_steps: 40
    rollout_steps: 300                       # the maximum

A condition reads the mean of the metric's last ``window`` logged values: ``above``/``below`` a threshold, or a
``plateau``: that mean rose by less than the given amount over the ``window`` values before it (it needs
``2 * window`` values). Pure functions, no torch: ``fastcurl plan`` and ``validate_stage`` use them before anything
loads; ``CurriculumCallback`` applies them.
"""

from __future__ import annotations

import re
from typing import Any

# What TRL's GRPOTrainer logs at every update (and fastcurl adds), which a rule may read.
KNOWN_METRICS = (
    "reward", "reward_std", "frac_reward_zero_std", "completions/clipped_ratio", "completions/mean_length",
    "completions/min_length", "completions/max_length", "completions/mean_terminated_length", "entropy", "kl",
    "loss", "grad_norm", "clip_ratio/region_mean", "clip_ratio/low_mean", "clip_ratio/high_mean",
    "dynamic_sampling/rounds", "dynamic_sampling/kept_share", "dynamic_sampling/groups_with_gradient",
)
_PER_REWARD = re.compile(r"^rewards/[^/]+/(mean|std)$")  # each reward function's own mean and spread
TESTS = ("above", "below", "plateau")


def _conditions(rule: Any) -> tuple[str, list[dict[str, Any]]]:
    if isinstance(rule, list):
        return "any", rule
    if isinstance(rule, dict) and len(rule) == 1 and next(iter(rule)) in ("any", "all"):
        mode = next(iter(rule))
        return mode, rule[mode]
    if isinstance(rule, dict) and "metric" in rule:
        return "any", [rule]
    raise ValueError(f"advance_when must be {{any: [conditions]}}, {{all: [conditions]}}, a list or one "
                     f"condition, got {rule!r}.")


def validate_rule(rule: Any, where: str) -> None:
    """Every condition names a logged metric, one test with a number, and a positive window."""
    try:
        mode, conditions = _conditions(rule)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    if not isinstance(conditions, list) or not conditions:
        raise ValueError(f"{where}: advance_when.{mode} must be a non-empty list of conditions.")
    for condition in conditions:
        if not isinstance(condition, dict):
            raise ValueError(f"{where}: each advance_when condition is a mapping, got {condition!r}.")
        metric = condition.get("metric")
        if metric not in KNOWN_METRICS and not (isinstance(metric, str) and _PER_REWARD.match(metric)):
            raise ValueError(f"{where}: advance_when names metric {metric!r}, which the trainer does not log. Use "
                             f"one of {', '.join(KNOWN_METRICS)} or rewards/<function>/mean.")
        tests = [t for t in TESTS if t in condition]
        unknown = set(condition) - {"metric", "window", *TESTS}
        if len(tests) != 1 or unknown:
            raise ValueError(f"{where}: the advance_when condition on {metric} needs exactly one of above, below, "
                             f"plateau (and optionally window), got {sorted(condition)}.")
        value = condition[tests[0]]
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"{where}: {metric} {tests[0]}: must be a number, got {value!r}.")
        window = condition.get("window", 1)
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise ValueError(f"{where}: {metric} window must be a positive integer, got {window!r}.")


def rule_metrics(rule: Any) -> list[str]:
    return [c["metric"] for c in _conditions(rule)[1]] if rule else []


def never_logged(rule: Any, *, beta: float | None = None, dynamic_sampling: bool = True,
                 reward_names: list[str] | None = None) -> list[str]:
    """The metrics a rule reads that this run will never log (a rule on them would silently never hold):
    ``kl`` at ``beta`` 0, ``dynamic_sampling/*`` on a stage without it, a reward function the run does not have."""
    missing = []
    for metric in rule_metrics(rule):
        if metric == "kl" and beta == 0:
            missing.append("kl (TRL logs it only when beta is not 0)")
        elif metric.startswith("dynamic_sampling/") and not dynamic_sampling:
            missing.append(f"{metric} (logged only on a stage with dynamic_sampling: true)")
        elif reward_names is not None and _PER_REWARD.match(metric) and metric.split("/")[1] not in reward_names:
            missing.append(f"{metric} (this run's reward functions are {', '.join(reward_names)})")
    return missing


def check_logged(rule: Any, where: str, **run: Any) -> None:
    """:func:`never_logged` as an error that names the stage, raised before anything loads."""
    missing = never_logged(rule, **run)
    if missing:
        raise ValueError(f"{where}: advance_when reads {'; '.join(missing)}: this run never logs it, so the rule "
                         "could never end the stage early. Name a metric the run logs.")


def check_rules_read_rewards(stages: list[Any], reward_funcs: Any) -> None:
    """A rule on ``rewards/<name>/mean`` must name one of the run's reward functions (TRL logs each by name)."""
    funcs = reward_funcs if isinstance(reward_funcs, list) else [reward_funcs]
    names = [getattr(f, "__name__", None) for f in funcs]
    if None in names:  # a reward model: TRL names it after its checkpoint; not checked
        return
    for i, stage in enumerate(stages):
        if stage.advance_when is not None:
            check_logged(stage.advance_when, f"Stage {i + 1} ('{stage.name}')", reward_names=names)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def condition_holds(condition: dict[str, Any], history: list[dict[str, float]]) -> tuple[bool, str]:
    """(holds, a description with the measured value) for one condition over the stage's logged history."""
    metric, window = condition["metric"], int(condition.get("window", 1))
    values = [entry[metric] for entry in history if metric in entry]
    if "plateau" in condition:
        if len(values) < 2 * window:
            return False, f"{metric} plateau: {len(values)} of {2 * window} values"
        rise = _mean(values[-window:]) - _mean(values[-2 * window:-window])
        return rise < condition["plateau"], f"{metric} rose {rise:.4g} over {window} logs (plateau {condition['plateau']})"
    if len(values) < window:
        return False, f"{metric}: {len(values)} of {window} values"
    mean = _mean(values[-window:])
    if "above" in condition:
        return mean > condition["above"], f"{metric} mean {mean:.4g} over {window} logs > {condition['above']}"
    return mean < condition["below"], f"{metric} mean {mean:.4g} over {window} logs < {condition['below']}"


def rule_holds(rule: Any, history: list[dict[str, float]]) -> tuple[bool, str]:
    """(holds, why): ``any`` holds when one condition does, ``all`` when every one does."""
    mode, conditions = _conditions(rule)
    results = [condition_holds(c, history) for c in conditions]
    held = [why for ok, why in results if ok]
    if mode == "any":
        return bool(held), held[0] if held else ""
    return len(held) == len(results), " and ".join(held)
