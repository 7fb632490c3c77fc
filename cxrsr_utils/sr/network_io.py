"""What the inference engine needs to know about a network: its upscaling factor, how many
channels it takes, and how its output becomes one gray image.

The engine (:mod:`cxrsr_utils.sr.infer`, whose module doc says why the mean is the default gray
reduction) replicates a gray window into every input channel and reduces the output here.
"""

from __future__ import annotations

from typing import Literal

import torch

from cxrsr_utils.images.radiographs import LUMA_WEIGHTS
from cxrsr_utils.sr import tiling

GrayReduction = Literal["mean", "luma"]


def input_channels(net: torch.nn.Module, scale: int) -> int:
    """How many image channels ``net`` takes at upscaling factor ``scale``."""
    first_conv = next((m for m in net.modules() if isinstance(m, torch.nn.Conv2d)), None)
    # A network without convolutions (a test's upsampling stand-in) takes any channel count;
    # give it RGB like RRDBNet.
    if first_conv is None:
        return 3
    # RRDBNet at scale 2 (1) pixel-unshuffles its input first, so its first convolution sees
    # 4 (16) times the image channels.
    unshuffle = tiling.mod_for_scale(scale) ** 2 if hasattr(net, "conv_first") else 1
    return first_conv.in_channels // unshuffle


def net_scale(net: torch.nn.Module, scale: int | None) -> int:
    """``scale`` if given, else the upscaling factor ``net`` carries; raises if neither is one."""
    if scale is None:
        # RRDBNet calls it .scale, SRVGGNetCompact (realesr-general-x4v3) .upscale.
        scale = getattr(net, "scale", None) or getattr(net, "upscale", None)
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(
            f"Cannot tell the network's upscaling factor (got {scale!r}); pass scale=... "
            "(RRDBNet carries it as .scale, SRVGGNetCompact as .upscale)."
        )
    return scale


def to_gray(output: torch.Tensor, how: GrayReduction, precision: str = "fp32") -> torch.Tensor:
    """(B, C, H, W) network output -> (B, H, W) gray, clamped to [0, 1]."""
    output = output.float()
    if output.shape[1] == 1:
        gray = output[:, 0]
    elif how == "mean":
        gray = output.mean(dim=1)
    elif output.shape[1] == 3:
        # LUMA_WEIGHTS: what cv2.COLOR_BGR2GRAY applies inside RealESRGANer.
        weights = torch.tensor(LUMA_WEIGHTS, dtype=output.dtype, device=output.device)
        gray = torch.einsum("bchw,c->bhw", output, weights)
    else:
        raise ValueError(f"gray='luma' needs 1 or 3 output channels, got {output.shape[1]}.")
    if not torch.isfinite(gray).all():
        why = {
            "fp16": "with precision='fp16' this is overflow: use 'bf16' or 'fp32'",
            "bf16": "under bf16 autocast; try precision='fp32'",
        }.get(precision, "in fp32, so the weights themselves are broken (check the .pth file)")
        raise FloatingPointError(f"The network produced NaN or infinite values {why}.")
    return gray.clamp_(0.0, 1.0)
