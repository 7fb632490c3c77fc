"""Real-ESRGAN's degradation stages, op by op as ``RealESRGANModel.feed_data`` runs them.

:func:`first_degradation` (blur, random resize, noise, JPEG), :func:`second_degradation` (a
blur that may be skipped, a random resize about the LR size, noise) and
:func:`final_resize_sinc_jpeg` (resize + sinc filter and JPEG, in random order) draw from
Python's ``random``, NumPy's global generator and torch's default generator in realesrgan's
order; :func:`cxrsr_utils.degradation.pipeline.degrade_batch` chains them. Each records its
random choices, and if asked its intermediate images, in a :class:`Trace`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from cxrsr_utils.sr.upstream import DiffJPEG, degradations, filter2D

_INTERP_MODES = ["area", "bilinear", "bicubic"]


@dataclass
class Trace:
    """What one :func:`~cxrsr_utils.degradation.pipeline.degrade_batch` call records: its
    decisions and, if asked, its stages."""

    keep_stages: bool
    decisions: dict[str, Any]
    stages: dict[str, torch.Tensor] = field(default_factory=dict)

    def keep(self, name: str, image: torch.Tensor) -> None:
        """Keep ``image`` as the stage ``name`` (one of the pipeline's ``STAGES``), if asked."""
        if self.keep_stages:
            self.stages[name] = image


def _option(options: Mapping[str, Any], name: str, stage: int) -> Any:
    """realesrgan's key for ``name`` in ``stage``: ``noise_range`` (1), ``noise_range2`` (2)."""
    return options[name if stage == 1 else f"{name}{stage}"]


def _random_resize(
    out: torch.Tensor,
    options: Mapping[str, Any],
    stage: int,
    size: tuple[int, int] | None,
    decisions: dict[str, Any],
) -> torch.Tensor:
    """One random up/down/keep resize, consuming the RNGs exactly as realesrgan's feed_data."""
    scale_range = _option(options, "resize_range", stage)
    updown = random.choices(["up", "down", "keep"], _option(options, "resize_prob", stage))[0]
    if updown == "up":
        factor = np.random.uniform(1, scale_range[1])
    elif updown == "down":
        factor = np.random.uniform(scale_range[0], 1)
    else:
        factor = 1
    mode = random.choice(_INTERP_MODES)
    decisions[f"resize{stage}"] = updown
    decisions[f"scale{stage}"] = float(factor)
    decisions[f"interp{stage}"] = mode
    if size is None:
        return F.interpolate(out, scale_factor=factor, mode=mode)
    return F.interpolate(out, size=(int(size[0] * factor), int(size[1] * factor)), mode=mode)


def _random_noise(
    out: torch.Tensor, options: Mapping[str, Any], stage: int, decisions: dict[str, Any]
) -> torch.Tensor:
    """Gaussian or Poisson noise (colour or gray), as realesrgan's feed_data draws it."""
    gray_prob = _option(options, "gray_noise_prob", stage)
    if np.random.uniform() < _option(options, "gaussian_noise_prob", stage):
        decisions[f"noise{stage}"] = "gaussian"
        return degradations.random_add_gaussian_noise_pt(
            out,
            sigma_range=_option(options, "noise_range", stage),
            clip=True,
            rounds=False,
            gray_prob=gray_prob,
        )
    decisions[f"noise{stage}"] = "poisson"
    return degradations.random_add_poisson_noise_pt(
        out,
        scale_range=_option(options, "poisson_scale_range", stage),
        gray_prob=gray_prob,
        clip=True,
        rounds=False,
    )


def _jpeg(
    out: torch.Tensor,
    jpeger: DiffJPEG,
    options: Mapping[str, Any],
    stage: int,
    decisions: dict[str, Any],
) -> torch.Tensor:
    quality = out.new_zeros(out.size(0)).uniform_(*_option(options, "jpeg_range", stage))
    decisions[f"jpeg_quality{stage}"] = quality.tolist()
    # Clamp first: realesrgan notes JPEG of out-of-range values gives unpleasant artifacts.
    out = jpeger(torch.clamp(out, 0, 1), quality=quality)
    # On CPU DiffJPEG returns a channels-last-strided tensor and filter2D's .view() then fails.
    return out.contiguous()


def _resize_and_noise(
    out: torch.Tensor,
    options: Mapping[str, Any],
    stage: int,
    size: tuple[int, int] | None,
    trace: Trace,
) -> torch.Tensor:
    """The random resize and the noise of one stage (``size``: what stage 2 resizes about)."""
    out = _random_resize(out, options, stage, size, trace.decisions)
    trace.keep(f"resize{stage}", out)
    out = _random_noise(out, options, stage, trace.decisions)
    trace.keep(f"noise{stage}", out)
    return out


def first_degradation(
    gt_usm: torch.Tensor,
    kernel1: torch.Tensor,
    options: Mapping[str, Any],
    jpeger: DiffJPEG,
    trace: Trace,
) -> torch.Tensor:
    """Stage 1 on the sharpened HR, as realesrgan does: blur, random resize, noise, JPEG."""
    out = filter2D(gt_usm, kernel1)
    trace.keep("blur1", out)
    out = _resize_and_noise(out, options, 1, None, trace)
    out = _jpeg(out, jpeger, options, 1, trace.decisions)
    trace.keep("jpeg1", out)
    return out


def second_degradation(
    out: torch.Tensor,
    kernel2: torch.Tensor,
    options: Mapping[str, Any],
    lr_size: tuple[int, int],
    trace: Trace,
) -> torch.Tensor:
    """Stage 2: a blur that may be skipped, a random resize about the LR size, noise."""
    trace.decisions["blur2"] = bool(np.random.uniform() < options["second_blur_prob"])
    if trace.decisions["blur2"]:
        out = filter2D(out, kernel2)
    trace.keep("blur2", out)
    return _resize_and_noise(out, options, 2, lr_size, trace)


def final_resize_sinc_jpeg(
    out: torch.Tensor,
    sinc_kernel: torch.Tensor,
    options: Mapping[str, Any],
    jpeger: DiffJPEG,
    lr_size: tuple[int, int],
    trace: Trace,
) -> torch.Tensor:
    """[resize to the LR size + sinc filter] and JPEG, in random order.

    realesrgan found other orders give twisted lines.
    """
    decisions = trace.decisions
    if np.random.uniform() < 0.5:
        decisions["final_order"] = "resize_sinc_jpeg"
        decisions["interp3"] = random.choice(_INTERP_MODES)
        out = F.interpolate(out, size=lr_size, mode=decisions["interp3"])
        out = filter2D(out, sinc_kernel)
        out = _jpeg(out, jpeger, options, 2, decisions)
    else:
        decisions["final_order"] = "jpeg_resize_sinc"
        out = _jpeg(out, jpeger, options, 2, decisions)
        decisions["interp3"] = random.choice(_INTERP_MODES)
        out = F.interpolate(out, size=lr_size, mode=decisions["interp3"])
        out = filter2D(out, sinc_kernel)
    trace.keep("jpeg_sinc2", out)
    return out
