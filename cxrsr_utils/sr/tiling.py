"""Where the inference engine cuts an image into network windows, and which windows batch.

Pure geometry on numpy arrays; :mod:`cxrsr_utils.sr.infer` runs the network on what is planned
here. ``tile``, ``tile_pad`` and ``pre_pad`` mean what they mean in realesrgan's
``RealESRGANer``: the image is first reflect-padded by ``pre_pad`` pixels at its bottom and
right (and on to a multiple of :func:`mod_for_scale`), then cut into ``tile`` x ``tile`` cores,
each with at least ``tile_pad`` input pixels of context on every side that is not an image
border. At the borders a window is shifted inward (keeping its full ``tile + 2 * tile_pad``
size) rather than cut short, so every window of an image has one shape and several can go
through the network in one batch (:func:`batches`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    """One network input window and the part of its output that is kept.

    All coordinates are in input pixels of the padded image; ``core`` lies inside ``window``
    and is already cut to the unpadded image (the output of padding is never kept).
    """

    image: int
    y0: int
    y1: int
    x0: int
    x1: int
    core_y0: int
    core_y1: int
    core_x0: int
    core_x1: int


def _axis_windows(length: int, tile: int, pad: int) -> list[tuple[int, int, int, int]]:
    """(window start, window end, core start, core end) along one axis of ``length`` pixels."""
    core = length if tile == 0 else tile
    size = min(core + 2 * pad, length)
    spans = []
    for start in range(0, length, core):
        end = min(start + core, length)
        # Shift the window inward at the borders instead of cutting it short: all windows
        # keep one size (so they batch) and a core never gets less than `pad` of context.
        w0 = min(max(start - pad, 0), length - size)
        spans.append((w0, w0 + size, start, end))
    return spans


def mod_for_scale(scale: int) -> int:
    """The multiple an RRDBNet input's sides must be at upscaling factor ``scale``."""
    # RRDBNet pixel-unshuffles its input by 2 (scale 2) or 4 (scale 1); RealESRGANer pads to
    # a multiple of that. Scale 4 needs nothing.
    return {1: 4, 2: 2}.get(scale, 1)


def _padded_shape(h: int, w: int, pre_pad: int, mod: int) -> tuple[int, int]:
    hp, wp = h + pre_pad, w + pre_pad
    return hp + (-hp) % mod, wp + (-wp) % mod


def pad(image: np.ndarray, pre_pad: int, mod: int) -> np.ndarray:
    """Reflect-pad bottom and right as RealESRGANer does (pre_pad first, then to a multiple)."""
    if pre_pad:
        image = np.pad(image, ((0, pre_pad), (0, pre_pad)), mode="reflect")
    h, w = image.shape
    if (-h) % mod or (-w) % mod:
        image = np.pad(image, ((0, (-h) % mod), (0, (-w) % mod)), mode="reflect")
    return image


def plan(
    shapes: Sequence[tuple[int, int]], tile: int, tile_pad: int, pre_pad: int, mod: int
) -> list[Window]:
    """Every window of images of ``shapes``, image after image, row after row.

    Windows whose core would hold only padding are left out (their output is cropped away).
    """
    if mod > 1 and tile and (tile % mod or tile_pad % mod):
        raise ValueError(
            f"This network needs its input sizes to be multiples of {mod}; choose tile and "
            f"tile_pad as multiples of {mod} (got {tile}, {tile_pad})."
        )
    windows = []
    for index, (h, w) in enumerate(shapes):
        hp, wp = _padded_shape(h, w, pre_pad, mod)
        for y0, y1, cy0, cy1 in _axis_windows(hp, tile, tile_pad):
            if cy0 >= h:  # a core made only of padding: its output would be cropped away
                continue
            for x0, x1, cx0, cx1 in _axis_windows(wp, tile, tile_pad):
                if cx0 >= w:
                    continue
                windows.append(Window(index, y0, y1, x0, x1, cy0, min(cy1, h), cx0, min(cx1, w)))
    return windows


def batches(windows: list[Window], batch_size: int) -> Iterator[list[Window]]:
    """Consecutive windows of equal shape, at most ``batch_size`` at a time."""
    batch: list[Window] = []
    for window in windows:
        if batch and (
            len(batch) == batch_size
            or (window.y1 - window.y0, window.x1 - window.x0)
            != (batch[0].y1 - batch[0].y0, batch[0].x1 - batch[0].x0)
        ):
            yield batch
            batch = []
        batch.append(window)
    if batch:
        yield batch


def output_slices(window: Window, scale: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """(the kept part of ``window``'s output, where it goes in the whole output), at ``scale``."""
    rows = slice((window.core_y0 - window.y0) * scale, (window.core_y1 - window.y0) * scale)
    cols = slice((window.core_x0 - window.x0) * scale, (window.core_x1 - window.x0) * scale)
    target = (
        slice(window.core_y0 * scale, window.core_y1 * scale),
        slice(window.core_x0 * scale, window.core_x1 * scale),
    )
    return (rows, cols), target
