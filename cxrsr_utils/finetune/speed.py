"""Fine-tuning's speed switches: channels_last, ``torch.compile``, cudnn.benchmark.

``FinetuneParams.channels_last`` / ``compile`` / ``cudnn_benchmark`` are on, off or ``auto``
(on a GPU; channels_last also on the CPU kinds of :data:`CHANNELS_LAST_CPU_KINDS`).
:func:`speed_options` turns them into ``opt["cxrsr"]["speed"]``, holding only the switches that
are on, so a run with all of them off has the options it always had; the training model applies
them with :func:`speed_up` once its networks, losses and optimizers exist (channels_last
already before DDP wraps a network: :func:`in_memory_format`), and puts its inputs in the
networks' memory format with :func:`inputs_like_networks`.

They change how fast a step runs, not what it trains (the same losses on the same data; the
numbers differ only by floating-point rounding), so the options digest leaves them out, as it
leaves out the data-loader workers. ``bench/training.py`` measured them on an NVIDIA H200
(``reports/bench/training.md``): one paper iteration in fp32 takes 0.215 s plain and 0.163 s
with all three (after a first iteration of about 110 s spent compiling).

``speed`` may also name ``compile_mode`` and ``compile_backend`` (``torch.compile``'s ``mode``
and ``backend``); the study's options never do, the benchmark and tests set them by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from cxrsr_utils.core import cpu
from cxrsr_utils.core.params_networks import SPEED_SWITCHES, FinetuneParams, SpeedSwitch

SPEED_OPTION = "speed"  # the key under opt["cxrsr"]
# CPU kinds where channels_last made the training step faster (bench/training.py,
# reports/bench/training.md): on an Intel Xeon with AMX, 1.11x in fp32 and 1.39x under bf16
# autocast at gt 128 (1.13x / 1.12x at gt 64). Not on an AVX2-only EPYC (0.96x in fp32) nor on
# an AVX512_BF16 EPYC (1.05x in fp32, within that run's noise).
CHANNELS_LAST_CPU_KINDS = ("amx",)
_INPUTS = ("lq", "gt", "gt_usm")  # what feed_data hands the step


def speed_options(finetune: FinetuneParams, device: str) -> dict[str, bool]:
    """The switches of ``finetune`` that are on for ``device`` (``cpu``/``cuda``) and, on the
    CPU, for this CPU's kind (:func:`cxrsr_utils.core.cpu.cpu_kind`)."""
    return {name: True for name in SPEED_SWITCHES if _on(name, getattr(finetune, name), device)}


def _on(name: str, value: SpeedSwitch, device: str) -> bool:
    if value != "auto":
        return value is True
    if device == "cuda":
        return True
    return name == "channels_last" and cpu.cpu_kind() in CHANNELS_LAST_CPU_KINDS


def training_networks(model: Any) -> list[torch.nn.Module]:
    """The networks a training step runs, without DDP's wrapper: the generator, then the
    discriminator and VGG19 where the model has them. Not the EMA copy: it is only averaged,
    never run in a step."""
    nets = [model.net_g, getattr(model, "net_d", None)]
    perceptual = getattr(model, "cri_perceptual", None)
    if perceptual is not None:
        nets.append(perceptual.vgg)
    return [model.get_bare_model(n) for n in nets if n is not None]


def speed_up(model: Any, speed: Mapping[str, Any]) -> None:
    """Apply the switches of ``speed`` to a basicsr GAN/SR model, in place.

    Parameters are converted in place (the optimizers keep theirs) and compiled in place with
    ``nn.Module.compile``: no ``_orig_mod`` wrapper, so parameter names, the EMA update and
    the saved state_dicts stay those of the plain networks.
    """
    if speed.get("cudnn_benchmark"):
        torch.backends.cudnn.benchmark = True  # process-wide, as basicsr's own train.py sets it
    nets = [in_memory_format(net, speed) for net in training_networks(model)]
    if speed.get("compile"):
        for net in nets:
            net.compile(
                mode=speed.get("compile_mode"), backend=speed.get("compile_backend", "inductor")
            )


def in_memory_format(net: torch.nn.Module, speed: Mapping[str, Any]) -> torch.nn.Module:
    """``net``, converted in place to channels_last when ``speed`` says so. Convert before
    DDP wraps a network: DDP lays out its gradient buckets by the parameters' strides."""
    if speed.get("channels_last"):
        net.to(memory_format=torch.channels_last)
    return net


def inputs_like_networks(model: Any, speed: Mapping[str, Any]) -> None:
    """With channels_last, the step's inputs (``lq``, ``gt``, ``gt_usm``) in that format too."""
    if speed.get("channels_last"):
        for name in _INPUTS:
            setattr(model, name, getattr(model, name).contiguous(memory_format=torch.channels_last))
