"""Memory and time a ``cxrsr upscale`` run will need, stated before it starts.

A tiled run holds, at any time: the model, one batch of network windows with their
activations (fixed by ``tile``, ``tile_pad`` and ``batch_size``, not by the image), the input
image padded as float32, and the integer output array (``scale**2`` times the input, 2 bytes
per pixel for 12/16-bit). So the bound grows with the image only through the input and output
arrays. The constants below were measured on this project's CPU machine (docs/upscaling.md);
on a GPU or another CPU the time differs and the progress bar's ETA
takes over.
"""

from __future__ import annotations

import math
from pathlib import Path

from cxrsr_utils.sr.upscaler import DEFAULT_TILE, Model

# Measured with the real command on this project's 2-core AMD EPYC (AVX-512), pretrained
# RRDBNet x4plus, fp32, tile 128 / pad 32, batch 1 (bench/upscale_large.py,
# reports/bench/upscale_large.md): peak RSS 1.51 GB for 192x192-pixel windows, of which about
# 0.6 GB is python, torch and the model.
BASELINE_BYTES = 600_000_000
BYTES_PER_WINDOW_PIXEL = 25_000
# Seconds per window input pixel on 2 cores, by (CPU kind, backend, precision), where measured:
# - avx2: bench/backends.py at 192x192 (the default window), AMD EPYC AVX2 only;
# - avx512_bf16: the command itself on an AMD EPYC with AVX-512 (upscale_large.md: 8.8 s per
#   192x192 window in fp32; the 3000x3000 run alone at 4.7-5.0 s per window in bf16);
# - amx: bench/backends.py at 192x192 on an Intel Xeon with AMX (2026-12-04, OpenMP's default
#   wait policy); the 3000x3000 command with its defaults (OpenVINO bf16) is in
#   upscale_large.md with the estimate it printed from these speeds.
SECONDS_PER_WINDOW_PIXEL: dict[tuple[str, str, str], float] = {
    ("avx2", "torch", "fp32"): 3.8e-4,
    ("avx2", "openvino", "fp32"): 3.0e-4,
    ("avx512_bf16", "torch", "fp32"): 2.39e-4,
    ("avx512_bf16", "torch", "bf16"): 1.33e-4,
    ("amx", "torch", "fp32"): 1.75e-4,
    ("amx", "openvino", "fp32"): 1.17e-4,
    ("amx", "torch", "bf16"): 6.93e-5,
    ("amx", "openvino", "bf16"): 1.88e-5,
}


def window_speed(kind: str, backend: str, precision: str) -> tuple[float, str]:
    """Seconds per window input pixel for this CPU kind, backend and precision, and where the
    number comes from: measured; else torch's on this kind (OpenVINO was faster wherever both
    were measured, so this over-estimates); else the slowest measured at that precision."""
    precision = "bf16" if precision == "fp16" else precision  # fp16 runs on GPUs only
    if (kind, backend, precision) in SECONDS_PER_WINDOW_PIXEL:
        return SECONDS_PER_WINDOW_PIXEL[kind, backend, precision], (
            f"measured for {backend} {precision} on a 2-core {kind} CPU"
        )
    if (kind, "torch", precision) in SECONDS_PER_WINDOW_PIXEL:
        return SECONDS_PER_WINDOW_PIXEL[kind, "torch", precision], (
            f"torch {precision}'s speed on a 2-core {kind} CPU ({backend} not measured there)"
        )
    slowest = max(v for (_, _, p), v in SECONDS_PER_WINDOW_PIXEL.items() if p == precision)
    return slowest, f"the slowest measured {precision} speed (no measurement on a {kind} CPU)"


def image_size(path: Path) -> tuple[int, int] | None:
    """(height, width) from the file header without decoding pixels; None if unreadable (a
    FIFO or device is never opened)."""
    try:
        from cxrsr_utils.images import radiograph

        radiograph.require_regular_file(path)
        if radiograph.is_dicom(path):
            import pydicom

            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            return int(ds.Rows), int(ds.Columns)
        from PIL import Image

        with Image.open(path) as img:
            return img.size[1], img.size[0]
    except Exception:  # an unreadable file fails later, as its own row, with its reason
        return None


def available_bytes() -> int:
    """Memory this process can still take: the kernel's MemAvailable, or less where a cgroup
    (a container's limit) or the address-space limit (``ulimit -v``) leaves less."""
    import resource

    available = 1 << 62
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        try:
            pages = int(Path("/proc/self/statm").read_text().split()[0])
            available = soft - pages * resource.getpagesize()
        except (OSError, ValueError, IndexError):
            available = soft
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = min(available, int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return max(available, 0)


def memory_refusal(size: tuple[int, int], model: Model) -> str:
    """Why one input of ``size`` (height, width) cannot start with the memory there is now,
    with what to do; ``""`` when it fits."""
    need, _ = estimate([size], model)
    have = available_bytes()
    if need <= have:
        return ""
    if model.is_network and model.options.tile:
        advice = f"try --tile {max(16, model.options.tile // 2)} or free memory"
    elif model.is_network:
        advice = f"tile it (--tile {DEFAULT_TILE}) or free memory"
    else:
        advice = "downsample or crop it first, or free memory"
    return (
        f"{size[1]}x{size[0]} pixels need about {need / 1e9:.1f} GB and {have / 1e9:.1f} GB are "
        f"available; not started ({advice})."
    )


def windows(h: int, w: int, tile: int, pad: int, pre_pad: int) -> tuple[int, int]:
    """(number of network windows, pixels per window) for an ``h`` x ``w`` input."""
    hp, wp = h + pre_pad, w + pre_pad
    if not tile:
        return 1, hp * wp
    side_h, side_w = min(tile + 2 * pad, hp), min(tile + 2 * pad, wp)
    return math.ceil(hp / tile) * math.ceil(wp / tile), side_h * side_w


def estimate(
    sizes: list[tuple[int, int]], model: Model, kind: str | None = None
) -> tuple[int, float]:
    """(peak bytes, seconds) for inputs of ``sizes`` run one at a time through ``model`` on a
    CPU of ``kind`` (:func:`cxrsr_utils.core.cpu.cpu_kind`: this one when None)."""
    if not sizes:
        return BASELINE_BYTES, 0.0
    opt, s = model.options, model.scale
    speed = _speed(model, kind)[0]
    peak, seconds = 0, 0.0
    for h, w in sizes:
        n, px = windows(h, w, opt.tile, opt.tile_pad, opt.pre_pad)
        arrays = h * w * (4 + 2) + h * w * s * s * 2  # padded float input, uint16 output
        if model.is_network:
            arrays += BYTES_PER_WINDOW_PIXEL * px * min(opt.batch_size, n)
            seconds += n * px * speed
        else:  # PIL resize works in float32 on the whole image
            arrays += h * w * s * s * 8
        peak = max(peak, arrays)
    return BASELINE_BYTES + peak, seconds


def _speed(model: Model, kind: str | None = None) -> tuple[float, str]:
    from cxrsr_utils.core import cpu

    opt = model.options
    return window_speed(kind or cpu.cpu_kind(), opt.backend, opt.precision)


def describe(sizes: list[tuple[int, int]], model: Model, inputs: int | None = None) -> str:
    """One line for the user: inputs (``inputs`` in all, of which ``sizes`` have a readable
    header), largest image, memory bound and time estimate."""
    peak, seconds = estimate(sizes, model)
    largest = max(sizes, key=lambda hw: hw[0] * hw[1]) if sizes else (0, 0)
    time_text = (
        f"about {seconds / 60:.0f} min ({seconds:.0f} s) at the speed {_speed(model)[1]}"
        if model.is_network
        else "seconds"
    )
    count = f"{len(sizes)} input(s)"
    if inputs is not None and inputs != len(sizes):
        count = f"{inputs} input(s) ({len(sizes)} with a readable header)"
    return (
        f"{count}, largest {largest[1]}x{largest[0]}; memory bound "
        f"{peak / 1e9:.1f} GB; time {time_text}."
    )
