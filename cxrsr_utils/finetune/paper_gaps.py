"""What a fine-tuned variant lacks against the paper's protocol: its *paper gaps*.

The paper fine-tunes the pretrained RealESRGAN_x4plus generator and netD with the two-stage
degradation and L1 + VGG19 perceptual + GAN losses. :func:`paper_gaps` names, in the words of
:data:`PAPER_GAPS`, what a run's options leave out; the model card records them (its
``differs_from_paper`` list, the name the card and the tables have always used) and every
table and figure note of notebooks 03 and 04 says them with :func:`describe_paper_gaps`.

Light on purpose (no torch, no basicsr): readers of model cards import it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cxrsr_utils.finetune.logs import DiscriminatorVerdict

# What each difference from the paper's protocol is called in the cards, tables and figures.
PAPER_GAPS = {
    "degradation": "bicubic-matched LR instead of the two-stage degradation",
    "gan": "no GAN loss (L1 only, no discriminator)",
    "netd": "discriminator from scratch (no pretrained netD)",
    "chance": "discriminator stayed at chance (it did not learn)",
    "vgg19": "no VGG19 perceptual loss",
    "generator": "generator from scratch (no pretrained RealESRGAN_x4plus)",
    "fp16": "x4plus start from fp16-rounded weights (ncnn conversion, not the official .pth)",
}
# How a variant without a model card (a generator with no record of its run) is described:
# unknown, which is not the same as "lacks nothing".
NOT_RECORDED = "not recorded in its model card"


def paper_gaps(opt: Mapping[str, Any], verdict: DiscriminatorVerdict | None) -> list[str]:
    """What a run of the options ``opt`` lacks against the paper's protocol, in the words of
    :data:`PAPER_GAPS`; empty for none. ``verdict``
    (:func:`~cxrsr_utils.finetune.logs.discriminator_verdict` of its loss log) adds that the
    discriminator stayed at chance."""
    cx, src = opt["cxrsr"], opt["cxrsr"]["sources"]
    gaps = []
    if cx["degradation"] != "realesrgan":
        gaps.append(PAPER_GAPS["degradation"])
    if cx["loss"] != "gan":
        gaps.append(PAPER_GAPS["gan"])
    else:
        if not src.get("discriminator"):
            gaps.append(PAPER_GAPS["netd"])
        if verdict is not None and verdict.at_chance:
            gaps.append(PAPER_GAPS["chance"])
    if "perceptual_opt" not in opt["train"]:
        gaps.append(PAPER_GAPS["vgg19"])
    generator = src.get("generator")
    if not generator:
        gaps.append(PAPER_GAPS["generator"])
    elif generator.get("fp16_rounded"):
        gaps.append(PAPER_GAPS["fp16"])
    return gaps


def describe_paper_gaps(gaps: Sequence[str] | None) -> str:
    """Paper gaps in words for a table cell or a figure note (None: :data:`NOT_RECORDED`)."""
    if gaps is None:
        return NOT_RECORDED
    return "; ".join(gaps) if gaps else "nothing (the paper's protocol)"
