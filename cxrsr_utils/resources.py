"""Memory and time a ``cxrsr upscale`` run will need, stated before it starts.

A tiled run holds, at any time: the model, one batch of network windows with their
activations (fixed by ``tile``, ``tile_pad`` and ``batch_size``, not by the image), the input
image padded as float32, and the integer output array (``scale**2`` times the input, 2 bytes
per pixel for 12/16-bit). So the bound grows with the image only through the input and output
arrays. The constants below were measured on this project's CPU machine (README, "Upscaling
your own radiographs"); on a GPU or another CPU the time differs and the progress bar's ETA
takes over.
"""

from __future__ import annotations

import math
from pathlib import Path

from cxrsr_utils.upscaler import DEFAULT_TILE, Model

# Measured with the real command on this project's 2-core AMD EPYC (AVX-512), pretrained
# RRDBNet x4plus, fp32, tile 128 / pad 32, batch 1 (bench/upscale_large.py,
# reports/bench/upscale_large.md): peak RSS 1.51 GB for 192x192-pixel windows, of which about
# 0.6 GB is python, torch and the model; 8.8 s per window.
BASELINE_BYTES = 600_000_000
BYTES_PER_WINDOW_PIXEL = 25_000
# Seconds per window input pixel; bf16 from the README's 2.3x speed-up on native-bf16 CPUs.
SECONDS_PER_WINDOW_PIXEL = {"fp32": 2.4e-4, "bf16": 1.05e-4, "fp16": 1.05e-4}


def image_size(path: Path) -> tuple[int, int] | None:
    """(height, width) from the file header without decoding pixels; None if unreadable (a
    FIFO or device is never opened)."""
    try:
        from cxrsr_utils import radiographs

        radiographs.require_regular_file(path)
        if radiographs.is_dicom(path):
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


def estimate(sizes: list[tuple[int, int]], model: Model) -> tuple[int, float]:
    """(peak bytes, seconds) for inputs of ``sizes`` run one at a time through ``model``."""
    if not sizes:
        return BASELINE_BYTES, 0.0
    opt, s = model.options, model.scale
    peak, seconds = 0, 0.0
    for h, w in sizes:
        n, px = windows(h, w, opt.tile, opt.tile_pad, opt.pre_pad)
        arrays = h * w * (4 + 2) + h * w * s * s * 2  # padded float input, uint16 output
        if model.is_network:
            arrays += BYTES_PER_WINDOW_PIXEL * px * min(opt.batch_size, n)
            seconds += n * px * SECONDS_PER_WINDOW_PIXEL[opt.precision]
        else:  # PIL resize works in float32 on the whole image
            arrays += h * w * s * s * 8
        peak = max(peak, arrays)
    return BASELINE_BYTES + peak, seconds


def describe(sizes: list[tuple[int, int]], model: Model, inputs: int | None = None) -> str:
    """One line for the user: inputs (``inputs`` in all, of which ``sizes`` have a readable
    header), largest image, memory bound and time estimate."""
    peak, seconds = estimate(sizes, model)
    largest = max(sizes, key=lambda hw: hw[0] * hw[1]) if sizes else (0, 0)
    time_text = (
        f"about {seconds / 60:.0f} min ({seconds:.0f} s) at the speed measured on the "
        "project's 2-core EPYC"
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
