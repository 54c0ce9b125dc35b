"""Whether a model's chat template opens a think block for it, decided once from the tokenizer.

DeepSeek-R1-Distill's template (and Qwen3's in thinking mode) ends the generation prompt with ``<think>``, so the
completion holds only the closing tag. A completion cut off by ``max_completion_length`` then holds neither
tag, and grading its whole text would reward a tentative ``\\boxed{}`` inside unfinished reasoning. FastCuRL's
and DeepScaleR's graders give such a completion 0: with a template that opens the block, only the text after
``</think>`` is graded and a completion without it scores 0 (policy ``required``).
"""

from __future__ import annotations

from typing import Any

from .extract import ThinkPolicy

_PROBE = [{"role": "user", "content": "What is 1 + 1?"}]


def template_opens_think(tokenizer: Any) -> bool:
    """True when the chat template's generation prompt ends inside an open ``<think>`` block."""
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a processor wraps its tokenizer
    if getattr(tokenizer, "chat_template", None) is None:
        return False
    try:
        prompt = tokenizer.apply_chat_template(_PROBE, add_generation_prompt=True, tokenize=False)
    except Exception:
        return False
    tail = prompt[prompt.rfind(_PROBE[0]["content"]) + len(_PROBE[0]["content"]):]
    return tail.rfind("<think>") > tail.rfind("</think>")


def think_policy_for(tokenizer: Any, setting: str = "template") -> ThinkPolicy:
    """The answer-region policy for a model: ``setting`` ``template`` decides from its chat template.

    ``required`` when the template opens a think block, else ``auto`` (after ``</think>`` if the model wrote
    one, the whole text if it wrote no tags, nothing if it left ``<think>`` open). ``required``, ``auto`` and
    ``none`` given explicitly are used as they are.
    """
    if setting == "template":
        return "required" if template_opens_think(tokenizer) else "auto"
    if setting not in ("required", "auto", "none"):
        raise ValueError(f"think policy must be 'template', 'required', 'auto' or 'none', got {setting!r}.")
    return setting  # type: ignore[return-value]


def apply_think_policy(reward_funcs: Any, setting: str | None, tokenizer: Any, announce: bool) -> tuple[Any, Any]:
    """``reward_funcs`` with FastCuRL's ``accuracy_reward`` bound to the model's think policy, and that policy.

    Decided once, from the tokenizer's generation prompt, so training rewards and the validation loop grade
    alike. Without a setting (a plain GRPOConfig) or without ``accuracy_reward`` the rewards stay as given.
    The symbolic pool is started here when a fastcurl reward is used, off the first rollout's path.
    """
    from .functions import accuracy_reward, accuracy_reward_for
    from .verify import default_pool

    funcs = reward_funcs if isinstance(reward_funcs, list) else [reward_funcs]
    policy = None
    if setting is not None and any(f is accuracy_reward for f in funcs):
        policy = think_policy_for(tokenizer, setting)
        funcs = [accuracy_reward_for(policy) if f is accuracy_reward else f for f in funcs]
        if announce:
            why = {"required": "only text after </think> is graded; a completion without it scores 0",
                   "auto": "after </think> when the model writes it, else the whole text",
                   "none": "the whole text"}[policy]
            source = "from the chat template" if setting == "template" else "think_policy"
            print(f"[fastcurl] answers: think policy '{policy}' ({source}): {why}", flush=True)
    if any(getattr(f, "__module__", "").startswith("fastcurl.rewards") for f in funcs if callable(f)):
        default_pool().start()
    return (funcs if isinstance(reward_funcs, list) else funcs[0]), policy
