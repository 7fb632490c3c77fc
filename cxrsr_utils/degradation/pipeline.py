"""How low-resolution training inputs are made: Real-ESRGAN's two-stage degradation, or bicubic x4.

There is one implementation of the degradation, :func:`degrade_batch`. Training calls it from the
model's ``feed_data`` (see :mod:`cxrsr_utils.finetune.model`) and notebook 02 calls it through
:func:`degrade`, which only adds a seed and the per-image blur kernels; its stages are
:mod:`cxrsr_utils.degradation.stages`'. Both are built from realesrgan/basicsr's own pieces: the
kernels come from ``RealESRGANDataset.__getitem__`` itself (:mod:`cxrsr_utils.degradation.kernels`)
and the torch ops are those of ``RealESRGANModel.feed_data`` (``filter2D``,
``random_add_gaussian_noise_pt``, ``random_add_poisson_noise_pt``, ``DiffJPEG``, ``USMSharp``),
drawn from the random streams in the same order, so the LR images equal realesrgan's for the same
random state (``tests/test_degrade.py`` checks this, ``tests/test_degrade_pinned.py`` pins the
outputs).

Two modes:

``realesrgan``
    the paper's protocol: blur, resize, noise, JPEG, twice, then a sinc filter, on the
    USM-sharpened HR. Every probability and range is a key of
    :func:`cxrsr_utils.degradation.options.degradation_options` (defaults: the paper's values, held
    by :class:`cxrsr_utils.core.params_data.DegradationParams`).
``bicubic``
    the evaluation's protocol ("matched"): antialiased bicubic x4 (Keys a = -0.5, equal to
    PIL's and :func:`cxrsr_utils.images.radiographs.resize`) and 8-bit rounding, nothing else.

Images are float tensors ``(B, C, H, W)`` in ``[0, 1]``; the networks take three channels, so
gray radiographs are repeated over RGB (:func:`gray_to_batch`). Notebook 02's tables and
crops are in :mod:`cxrsr_utils.degradation.preview`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch.nn import functional as F

from cxrsr_utils.core.repro import seeded
from cxrsr_utils.degradation.kernels import sample_kernels, sinc_flags, zero_kernels
from cxrsr_utils.degradation.options import KERNEL_SIZE, check_pipeline_options, degradation_options
from cxrsr_utils.degradation.stages import (
    Trace,
    final_resize_sinc_jpeg,
    first_degradation,
    second_degradation,
)
from cxrsr_utils.sr.upstream import DiffJPEG, USMSharp

Mode = Literal["realesrgan", "bicubic"]
MODES: tuple[Mode, ...] = ("realesrgan", "bicubic")

# The stages :func:`degrade` can return, in pipeline order (``realesrgan`` mode).
STAGES: tuple[str, ...] = (
    "hr",
    "hr_usm",
    "blur1",
    "resize1",
    "noise1",
    "jpeg1",
    "blur2",
    "resize2",
    "noise2",
    "jpeg_sinc2",
    "lr",
)


@dataclass
class Degraded:
    """A degraded batch: ``lr`` (B, C, H/scale, W/scale) and the HR the losses compare with.

    ``gt_usm`` is the USM-sharpened HR the realesrgan pipeline starts from (None in ``bicubic``
    mode, which degrades the plain HR; training sharpens its crops afterwards in both modes,
    as realesrgan does). ``decisions`` records the per-batch random choices (resize
    direction, scale, interpolation, noise type, whether the second blur ran, the order of
    the last step, JPEG qualities) and, from :func:`degrade`, which kernels were sinc
    filters; ``stages`` holds the intermediate images (see :data:`STAGES`) when asked for.
    """

    lr: torch.Tensor
    gt_usm: torch.Tensor | None
    decisions: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, torch.Tensor] = field(default_factory=dict)


def quantize(image: torch.Tensor) -> torch.Tensor:
    """Round to 8-bit levels and clip, as realesrgan does to its final LR (and a PNG would)."""
    return torch.clamp((image * 255.0).round(), 0, 255) / 255.0


def bicubic_downsample(hr: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """Antialiased bicubic downsampling to ``(H // scale, W // scale)``, not rounded.

    torch's antialiased bicubic uses Keys a = -0.5 with a kernel widened by ``scale``, i.e. the
    same filter as PIL and :func:`cxrsr_utils.images.radiographs.resize`, the study's evaluation
    bicubic.
    """
    h, w = hr.shape[-2:]
    return F.interpolate(
        hr, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False
    )


def sharpen(usm_sharpener: USMSharp, gt: torch.Tensor) -> torch.Tensor:
    """USM-sharpen ``gt``; a grey batch (three equal channels, as every radiograph here is)
    is sharpened once and repeated, which gives the same pixels at a third of the cost (the
    sharpening filters each channel alone, and it is the costliest op of a CPU degradation)."""
    if (
        gt.shape[1] == 3
        and torch.equal(gt[:, :1], gt[:, 1:2])
        and torch.equal(gt[:, :1], gt[:, 2:])
    ):
        return usm_sharpener(gt[:, :1]).expand_as(gt).contiguous()
    return usm_sharpener(gt)


def degrade_batch(
    gt: torch.Tensor,
    *,
    kernel1: torch.Tensor,
    kernel2: torch.Tensor,
    sinc_kernel: torch.Tensor,
    options: Mapping[str, Any],
    jpeger: DiffJPEG,
    usm_sharpener: USMSharp,
    mode: Mode = "realesrgan",
    scale: int = 4,
    keep_stages: bool = False,
) -> Degraded:
    """Degrade an HR batch exactly as training does (the one implementation of the pipeline).

    ``gt`` is ``(B, C, H, W)`` in [0, 1] on any device; the kernels are ``(B, 21, 21)`` as
    RealESRGANDataset returns them (see :func:`cxrsr_utils.degradation.kernels.sample_kernels`).
    Randomness comes from Python's ``random``, NumPy's global generator and torch's default
    generator, consumed in realesrgan's order; seed them (or use :func:`degrade`) for a
    reproducible result. ``mode="bicubic"`` ignores the kernels and random streams and returns
    bicubic x4.
    """
    if mode not in MODES:
        raise ValueError(f"Unknown degradation mode {mode!r}; use one of {MODES}.")
    if gt.ndim != 4:
        raise ValueError(f"gt must be (B, C, H, W), got shape {tuple(gt.shape)}.")
    trace = Trace(keep_stages, decisions={"mode": mode})
    trace.keep("hr", gt)
    if mode == "bicubic":
        # The evaluation's LR is bicubic of the plain HR, so the matched protocol uses it too
        # (and skips the full-size USM, the costliest op on CPU).
        lr = quantize(bicubic_downsample(gt, scale))
        trace.keep("lr", lr)
        return Degraded(lr=lr, gt_usm=None, decisions=trace.decisions, stages=trace.stages)
    gt_usm = sharpen(usm_sharpener, gt)
    trace.keep("hr_usm", gt_usm)
    check_pipeline_options(options)
    lr_size = (gt.shape[2] // scale, gt.shape[3] // scale)
    out = first_degradation(gt_usm, kernel1, options, jpeger, trace)
    out = second_degradation(out, kernel2, options, lr_size, trace)
    out = final_resize_sinc_jpeg(out, sinc_kernel, options, jpeger, lr_size, trace)
    lr = quantize(out)
    trace.keep("lr", lr)
    return Degraded(lr=lr, gt_usm=gt_usm, decisions=trace.decisions, stages=trace.stages)


def degrade(
    hr: torch.Tensor | np.ndarray | Sequence[np.ndarray],
    *,
    seed: int,
    mode: Mode = "realesrgan",
    options: Mapping[str, Any] | None = None,
    scale: int = 4,
    return_stages: bool = False,
) -> Degraded:
    """Degrade HR images as training does, reproducibly: same seed, same LR.

    ``hr`` is a ``(B, C, H, W)`` tensor in [0, 1] (any device), or gray 2-D arrays in [0, 1]
    (one, or a list of one size, made into a ``(B, 3, H, W)`` batch by :func:`gray_to_batch`).
    ``options`` defaults to :func:`cxrsr_utils.degradation.options.degradation_options`. Kernels
    come from RealESRGANDataset and the ops from :func:`degrade_batch`, the code training runs.
    ``H`` and ``W`` must be multiples of ``scale`` and, in ``realesrgan`` mode, large enough
    for the 21-tap kernels after the smallest first resize (76 pixels for the default 0.15:
    reflect padding needs 11). Each image of a batch gets its own kernels; resize, noise type
    and JPEG order are drawn once per batch, as in realesrgan.
    """
    batch = hr if isinstance(hr, torch.Tensor) else gray_to_batch(hr)
    options = degradation_options() if options is None else options
    _check_hr_size(batch, mode, options, scale)
    device = batch.device
    jpeger = DiffJPEG(differentiable=False).to(device)
    usm = USMSharp().to(device)
    n = batch.shape[0]
    with seeded(seed, device), torch.no_grad():
        kernels = sample_kernels(n, options) if mode == "realesrgan" else zero_kernels(n)
        kernels = {k: v.to(device) for k, v in kernels.items()}
        result = degrade_batch(
            batch,
            **kernels,
            options=options,
            jpeger=jpeger,
            usm_sharpener=usm,
            mode=mode,
            scale=scale,
            keep_stages=return_stages,
        )
    if mode == "realesrgan":
        result.decisions.update(sinc_flags(kernels))
    return result


def _check_hr_size(batch: torch.Tensor, mode: Mode, options: Mapping[str, Any], scale: int) -> None:
    """Refuse a batch :func:`degrade` cannot degrade: not 4-D, odd-sized, or too small."""
    if batch.ndim != 4:
        raise ValueError(f"hr must be (B, C, H, W) or a gray 2-D array, got {tuple(batch.shape)}.")
    h, w = batch.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"HR size {h}x{w} is not divisible by scale {scale}.")
    if mode == "realesrgan":
        min_side = _min_side(options["resize_range"][0], scale)
        if min(h, w) < min_side:
            raise ValueError(
                f"HR size {h}x{w} is too small for the two-stage degradation "
                f"(at least {min_side} pixels per side for resize_range "
                f"{options['resize_range']})."
            )


def min_hr_side(options: Mapping[str, Any], scale: int = 4) -> int:
    """Smallest HR side :func:`degrade` takes in ``realesrgan`` mode with these options."""
    return _min_side(options["resize_range"][0], scale)


def _min_side(min_resize: float, scale: int) -> int:
    """Smallest HR side (a multiple of ``scale``) whose resized copies take a 21-tap kernel."""
    need = KERNEL_SIZE // 2 + 1  # reflect padding by k // 2 needs a longer side
    side = scale
    while math.floor(side * min_resize) < need or side // scale < need:
        side += scale
    return side


def gray_to_batch(images: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
    """Gray float images in [0, 1] (one 2-D array or several of one size) -> ``(B, 3, H, W)``."""
    arrays = [images] if isinstance(images, np.ndarray) and images.ndim == 2 else list(images)
    for a in arrays:
        if a.ndim != 2:
            raise ValueError(f"Expected gray 2-D images, got shape {a.shape}.")
    stacked = torch.from_numpy(np.stack([np.asarray(a, np.float32) for a in arrays]))
    return stacked[:, None].repeat(1, 3, 1, 1).contiguous()


def batch_to_gray(batch: torch.Tensor) -> np.ndarray:
    """``(B, C, H, W)`` -> ``(B, H, W)`` float32: the channel mean (colour noise averages out)."""
    return batch.detach().float().mean(dim=1).cpu().numpy()
