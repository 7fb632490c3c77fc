"""What this machine's CPU can do, and which precision the study uses on it.

The project's machines differ: some AMD EPYC have AVX-512 with native bf16 (``avx512_bf16``),
others only AVX2, where torch emulates bf16 in software. Emulated bf16 is not a small
slow-down: RRDBNet on a 32² input took 60.6 s under bf16 autocast against 0.38 s in fp32 on
an AVX2-only EPYC (:data:`EMULATED_BF16_SLOWDOWN`). So ``"auto"`` precision means bf16 only
where the CPU has it natively, and an explicit bf16 request on a CPU without it is warned about.

Float results also differ slightly between the two instruction sets (oneDNN, MKL, XLA, numpy
and OpenCV pick other kernels), which is why the run manifest records the CPU and why results
are compared with the committed ones within tolerances (:mod:`cxrsr_utils.reporting.reference`).
:data:`AVX2_ONLY_ENV` makes an AVX-512 machine run the kernels an AVX2-only one would
(``bench/cpu_portability.py`` uses it to measure those tolerances).
"""

from __future__ import annotations

import functools
import os
import platform
import warnings
from pathlib import Path
from typing import Any, Literal

Precision = Literal["auto", "fp32", "bf16", "fp16"]

# Flags that decide which kernels run (/proc/cpuinfo names).
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
# Measured on an AVX2-only AMD EPYC (issue 12): 60.6 s bf16 vs 0.38 s fp32, RRDBNet, 32² input.
EMULATED_BF16_SLOWDOWN = 160

# The kinds of CPU the study's machines come in, slowest first.
KINDS = ("avx2", "avx512", "avx512_bf16", "amx")

# Environment that limits every library the study uses to AVX2 kernels, set before start-up.
AVX2_ONLY_ENV = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN inside torch and TensorFlow
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's own vectorised kernels
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # MKL (torch's matrix products)
    "XLA_FLAGS": "--xla_cpu_max_isa=AVX2",  # TensorFlow's XLA JIT
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",  # numpy's dispatched loops
    "OPENBLAS_CORETYPE": "Haswell",  # OpenBLAS under numpy/scipy
    "OPENCV_CPU_DISABLE": "AVX512-SKX",  # OpenCV (basicsr's degradations)
}


@functools.cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    model = platform.processor() or platform.machine()
    flags: frozenset[str] = frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model in ("", platform.machine()):
            model = value.strip()
        elif key.strip() == "flags":
            flags = frozenset(value.split())
            break
    return model, flags


def cpu_model() -> str:
    """The CPU's model name (``AMD EPYC``), or the machine type where it cannot be read."""
    return _cpuinfo()[0]


def isa_flags() -> dict[str, bool]:
    """For each flag of :data:`ISA_FLAGS`, whether this CPU has it."""
    flags = _cpuinfo()[1]
    return {flag: flag in flags for flag in ISA_FLAGS}


def isa_limits() -> dict[str, str]:
    """The variables of :data:`AVX2_ONLY_ENV` set in this process (an emulated run)."""
    return {k: os.environ[k] for k in AVX2_ONLY_ENV if k in os.environ}


def _hardware_kind(flags: dict[str, bool]) -> str:
    if flags.get("amx_bf16"):
        return "amx"
    if flags.get("avx512_bf16"):
        return "avx512_bf16"
    return "avx512" if flags.get("avx512f") else "avx2"


def limited_kind() -> str | None:
    """The CPU kind this process is limited to by :data:`KIND_ENV`'s variables, else None.

    ``ONEDNN_MAX_CPU_ISA`` names oneDNN's ISA (its spelling); any other variable of
    :data:`AVX2_ONLY_ENV` alone means the AVX2 emulation.
    """
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if isa in ("", "ALL", "DEFAULT"):
        return "avx2" if isa_limits() else None
    if "AMX" in isa:
        return "amx"
    if isa in ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512"):
        return "avx512_bf16"
    return "avx512" if isa.startswith("AVX512") else "avx2"


def cpu_kind(flags: dict[str, bool] | None = None) -> str:
    """``amx``, ``avx512_bf16``, ``avx512`` or ``avx2``: the kind this process runs as, the
    CPU's own (``flags``: :func:`isa_flags` unless faked) or the slower one it is limited to."""
    own = _hardware_kind(isa_flags() if flags is None else flags)
    limit = limited_kind()
    if limit is None:
        return own
    return min(own, limit, key=KINDS.index)


def native_bf16() -> bool:
    """Whether bf16 arithmetic runs in hardware here (AVX512_BF16 or AMX), not emulated."""
    return cpu_kind() in ("amx", "avx512_bf16")


def kernel_isa() -> str:
    """The instruction set torch's CPU kernels use here (``AVX512``, ``AVX2``...)."""
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


def describe() -> dict[str, Any]:
    """The CPU facts a run manifest records: model, flags, native bf16, kernels, limits."""
    return {
        "model": cpu_model(),
        "flags": isa_flags(),
        "native_bf16": native_bf16(),
        "torch_kernels": kernel_isa(),
        "isa_limits": isa_limits(),
    }


# A kind emulated on a faster CPU, by the environment set before start-up: AVX512_BF16 on an
# AMX CPU is oneDNN limited to AVX-512 with bf16 (torch's and OpenVINO's convolutions).
KIND_ENV: dict[str, dict[str, str]] = {
    "avx512_bf16": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"},
    "avx2": AVX2_ONLY_ENV,
}

_KIND_NAMES = {
    "amx": "AVX-512 + AMX bf16",
    "avx512_bf16": "AVX-512 + native bf16",
    "avx512": "AVX-512, no native bf16",
    "avx2": "AVX2 only",
}


def isa_label() -> str:
    """A short name for timings: ``AMD EPYC, AVX-512 + native bf16`` or ``..., AVX2 only``;
    an emulated kind says so (``AVX2 only (emulated on an AVX-512 + AMX bf16 CPU)``)."""
    flags = isa_flags()
    own, kind = _hardware_kind(flags), cpu_kind()
    if kind != own:
        return f"{cpu_model()}, {_KIND_NAMES[kind]} (emulated on an {_KIND_NAMES[own]} CPU)"
    if not flags["avx512f"] and not flags["avx2"]:
        return f"{cpu_model()}, no AVX2"
    return f"{cpu_model()}, {_KIND_NAMES[own]}"


def resolve_precision(requested: Precision, device: str = "cpu") -> Literal["fp32", "bf16", "fp16"]:
    """The precision to run: ``auto`` is bf16 where it is native (CPU) or supported (GPU),
    else fp32; an explicit bf16 on a CPU that emulates it runs, with a warning."""
    on_cpu = not str(device).startswith("cuda")
    if requested == "auto":
        if on_cpu:
            return "bf16" if native_bf16() else "fp32"
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if requested == "bf16" and on_cpu and not native_bf16():
        warnings.warn(
            f"bf16 was asked for on a CPU without native bf16 ({isa_label()}): torch emulates "
            f"it here, about {EMULATED_BF16_SLOWDOWN}x slower than fp32 (measured on RRDBNet). "
            "Use 'fp32', or 'auto' to pick bf16 only where the CPU has it.",
            RuntimeWarning,
            stacklevel=2,
        )
    return requested
