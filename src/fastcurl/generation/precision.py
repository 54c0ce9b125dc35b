"""Training precision chosen by the hardware.

On a GPU, bfloat16 mixed precision is what every recipe wants and TRL's default already gives it. On a CPU it
depends on the chip: with AVX512-BF16 or AMX a bfloat16 matmul is faster than a float32 one, without them torch
emulates it and it is tens of times slower (1.3 against 87 GFLOPS measured on an AVX2-only EPYC). CPU flags do
not say what the installed kernels will do (oneDNN can be capped, a VM can hide flags), so the decision is made
by a short matmul probe: a few milliseconds on a fast CPU, well under a second on a slow one, once per process.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from functools import lru_cache

logger = logging.getLogger(__name__)

# bfloat16 counts as native when its matmul is at most this much slower than float32's. Native support runs at
# 0.3-1x float32's time, emulation at 20-70x: anything in between is noise on a busy machine.
NATIVE_BF16_MAX_SLOWDOWN = 2.0
_PROBE_SIZE = 256
_PROBE_REPEATS = 5


@dataclass(frozen=True)
class CpuBf16Probe:
    """What the probe measured: the CPU's flags and how much slower a bfloat16 matmul ran than a float32 one."""

    capability: str
    flags: tuple[str, ...]
    float32_seconds: float
    bfloat16_seconds: float

    @property
    def slowdown(self) -> float:
        return self.bfloat16_seconds / max(self.float32_seconds, 1e-9)

    @property
    def native(self) -> bool:
        return self.slowdown <= NATIVE_BF16_MAX_SLOWDOWN

    def describe(self) -> str:
        if not self.flags:
            flags = "no AVX512-BF16 or AMX flag"
        elif self.native:
            flags = ", ".join(self.flags)
        else:
            flags = f"{', '.join(self.flags)} flag present, but the installed kernels emulate bfloat16"
        return f"{self.capability} CPU ({flags}): a bfloat16 matmul ran {self.slowdown:.1f}x the time of float32"


def _bf16_cpu_flags() -> tuple[str, ...]:
    try:
        with open("/proc/cpuinfo") as f:
            words = set(f.read().split())
    except OSError:
        return ()
    return tuple(sorted(w for w in words if w in ("avx512_bf16", "amx_bf16", "amx_tile")))


@lru_cache(maxsize=1)
def probe_cpu_bf16() -> CpuBf16Probe:
    """Time a float32 and a bfloat16 matmul on one thread: the fastest of a few runs each, interleaved.

    One thread and the fastest run measure the kernel, not the machine's load: on a busy machine a multi-threaded
    float32 matmul waits for its threads and can look as slow as emulated bfloat16.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        timings: dict[torch.dtype, list[float]] = {torch.float32: [], torch.bfloat16: []}
        operands = {dtype: (torch.randn(_PROBE_SIZE, _PROBE_SIZE).to(dtype),
                            torch.randn(_PROBE_SIZE, _PROBE_SIZE).to(dtype)) for dtype in timings}
        for dtype, (a, b) in operands.items():
            torch.mm(a, b)  # first call picks and primes the kernel
        for _ in range(_PROBE_REPEATS):
            for dtype, (a, b) in operands.items():
                start = time.perf_counter()
                torch.mm(a, b)
                timings[dtype].append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return CpuBf16Probe(
        capability=torch.backends.cpu.get_cpu_capability(),
        flags=_bf16_cpu_flags(),
        float32_seconds=min(timings[torch.float32]),
        bfloat16_seconds=min(timings[torch.bfloat16]),
    )


def runs_on_cpu(use_cpu: bool = False) -> bool:
    """Whether training will run on the CPU: asked for, or no accelerator that transformers would use."""
    if use_cpu:
        return True
    import torch

    if torch.cuda.is_available():
        return False
    for name in ("xpu", "mps", "npu", "mlu", "musa"):
        backend = getattr(torch, name, None) or getattr(torch.backends, name, None)
        is_available = getattr(backend, "is_available", None)
        if callable(is_available) and is_available():
            return False
    return True


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run trains in and the one line that says why."""

    bf16: bool | None  # None: leave TRL's default (accelerators)
    reason: str

    @property
    def model_dtype(self) -> str:
        return "bfloat16" if self.bf16 else "float32"


def choose_precision(bf16: bool | None, fp16: bool = False, use_cpu: bool = False) -> PrecisionChoice:
    """Resolve ``bf16`` for this machine. An explicit True/False always wins; None means "choose for me".

    On a CPU without native bfloat16 an explicit ``bf16=True`` is kept but warned about with the measured slowdown.
    """
    if fp16:
        return PrecisionChoice(False if bf16 is None else bf16, "fp16 set by the user")
    if bf16 is None and os.environ.get("ACCELERATE_MIXED_PRECISION") == "bf16":
        bf16 = True  # `accelerate launch --mixed_precision bf16` (its default "no" is not a choice, so not read)
    if not runs_on_cpu(use_cpu):
        if bf16 is None:
            return PrecisionChoice(None, "accelerator: bfloat16 mixed precision (TRL's default)")
        return PrecisionChoice(bf16, f"bf16={bf16} set by the user")
    probe = probe_cpu_bf16()
    if bf16 is None:
        if probe.native:
            return PrecisionChoice(True, f"bfloat16, automatic: {probe.describe()}")
        return PrecisionChoice(
            False, f"float32, automatic: {probe.describe()} (no native bfloat16; set bf16: true to force it)"
        )
    if bf16 and not probe.native:
        logger.warning(
            f"bf16=True on a CPU without native bfloat16: {probe.describe()}. Training will be about "
            f"{probe.slowdown:.0f}x slower than in float32; leave bf16 unset to let fastcurl choose."
        )
        return PrecisionChoice(True, f"bfloat16 set by the user, {probe.slowdown:.0f}x slower than float32 here")
    return PrecisionChoice(bf16, f"bf16={bf16} set by the user")


def describe_dtype_choice(dtype: str | None, use_cpu: bool = False) -> str:
    """Why ``resolve_dtype`` picks what it picks, for a log line."""
    if dtype not in (None, "auto"):
        return f"{dtype}, set by the user"
    if not runs_on_cpu(use_cpu):
        return "the checkpoint's own dtype (accelerator)"
    return choose_precision(None, use_cpu=True).reason


def resolve_dtype(dtype: str | None, use_cpu: bool = False) -> str | None:
    """A torch dtype name for loading a model: ``auto``/None picks bfloat16 only where it is fast.

    On an accelerator ``auto`` keeps the checkpoint's own dtype (None). Explicit names pass through; bfloat16 on a
    CPU that emulates it warns with the probe's measured slowdown.
    """
    if dtype not in (None, "auto"):
        if dtype == "bfloat16" and runs_on_cpu(use_cpu):
            probe = probe_cpu_bf16()
            if not probe.native:
                logger.warning(
                    f"Loading the model in bfloat16 on a CPU without native bfloat16: {probe.describe()}. Its "
                    f"matmuls will be about {probe.slowdown:.0f}x slower than in float32; use dtype 'auto'."
                )
        return dtype
    if not runs_on_cpu(use_cpu):
        return None
    return choose_precision(None, use_cpu=True).model_dtype
