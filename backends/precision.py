"""What ``--precision=auto`` chooses on each kind of device (docs/precision.md).

Mixed bfloat16 where the hardware multiplies bfloat16 natively (CPUs with AMX or AVX-512 BF16, GPUs
of compute capability 8.0 or more): the same exponent range as float32, so no loss scaling, and
matrix units that run several times faster than in float32. Mixed float16 with dynamic loss scaling
on GPUs with tensor cores but without bfloat16 ones (compute capability 7.x: Volta, Turing). float32
otherwise: without the instructions, bfloat16 is emulated and slower than float32, and float16 on a
GPU without tensor cores (Pascal's 6.x: P100 computes float16 at twice the float32 rate, the GTX 10xx
cards at a small fraction of it) saves memory at best, for loss scaling's cost and risk.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple

__all__ = ["CPU_BF16_FLAGS", "cpu_flags", "cpu_precision", "for_model", "gpu_precision"]

# /proc/cpuinfo flags of instructions that compute bfloat16 products (oneDNN uses them).
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> Optional[Sequence[str]]:
    """The CPU's feature flags (Linux), or None where they cannot be read."""
    if not os.path.exists(cpuinfo):
        return None
    with open(cpuinfo) as f:
        for line in f:
            if line.startswith("flags"):
                return line.split(":", 1)[1].split()
    return None


def cpu_precision(flags: Optional[Sequence[str]]) -> Tuple[str, str]:
    """``(precision, reason)`` for a CPU with these feature flags."""
    if flags is None:
        return "fp32", "the CPU's features could not be read (not Linux); bfloat16 may be emulated"
    found = [f for f in CPU_BF16_FLAGS if f in flags]
    if found:
        return "bf16", f"this CPU computes bfloat16 natively ({', '.join(found)})"
    return "fp32", f"this CPU has none of {', '.join(CPU_BF16_FLAGS)}; bfloat16 would be emulated, slower"


def gpu_precision(capabilities: Sequence[Optional[Tuple[int, int]]]) -> Tuple[str, str]:
    """``(precision, reason)`` for GPUs of these compute capabilities (the smallest decides)."""
    known = [c for c in capabilities if c]
    if not known:
        return "fp32", "the GPUs' compute capability is unknown"
    lowest = min(known)
    text = f"{lowest[0]}.{lowest[1]}"
    if lowest >= (8, 0):
        return "bf16", f"GPU compute capability {text} >= 8.0 computes bfloat16 natively"
    if lowest >= (7, 0):
        return "fp16", (f"GPU compute capability {text} (7.x) has float16 tensor cores, no bfloat16 ones: "
                        "float16 with dynamic loss scaling")
    return "fp32", f"GPU compute capability {text} < 7.0 has no tensor cores"


def for_model(choice: str, reason: str, *, device: str, model: str, fp32_faster_on: Sequence[str]) -> Tuple[str, str]:
    """The device's ``(precision, reason)`` adjusted for one model: fp32 where the model's recipe records that it
    trains faster in fp32 than in mixed precision on this kind of device (``ModelRecipe.fp32_faster_on``).

    Args:
        choice: the device's own choice (:meth:`Backend.auto_precision`).
        reason: why the device chose it.
        device: the kind of backend (``cpu``, ``gpu``, ``npu``).
        model: the model's name, for the reason.
        fp32_faster_on: the recipe's kinds of backend on which the model measured faster in fp32.
    """
    if choice == "fp32" or device not in fp32_faster_on:
        return choice, reason
    return "fp32", (f"{reason}, but {model} trains faster in fp32 than in {choice} on {device}s (measured, "
                    f"bench/RESULTS.md; --precision={choice} to use it anyway)")
