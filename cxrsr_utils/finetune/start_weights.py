"""The weights a fine-tuning run starts from, found before it starts.

:func:`resolve_sources` finds the pretrained generator (RealESRGAN_x4plus, or its ncnn copy
offline), the pretrained discriminator and VGG19 (for the perceptual loss) that a setting
asks for, and raises :class:`cxrsr_utils.external.sources.SourceError` with the fix when a required
one
is missing; :class:`TrainingSources` is what the model card records: each file with its
SHA-256, or what replaced it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrsr_utils.external import registry, sources
from cxrsr_utils.sr.networks import WeightsInfo, pretrained_generator_state


@dataclass(frozen=True)
class TrainingSources:
    """The weights a run starts from, or why it does without them (for the model card).

    ``generator``/``discriminator``/``vgg19`` are None when not used; ``notes`` says what
    replaced each one.
    """

    generator: WeightsInfo | None
    discriminator: WeightsInfo | None
    vgg19: WeightsInfo | None
    notes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for role in ("generator", "discriminator", "vgg19"):
            info = getattr(self, role)
            out[role] = info.to_dict() if info is not None else None
        out["notes"] = dict(self.notes)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingSources:
        def info(role: str) -> WeightsInfo | None:
            return WeightsInfo(**data[role]) if data.get(role) else None

        return cls(
            info("generator"), info("discriminator"), info("vgg19"), dict(data.get("notes", {}))
        )


def _file_info(name: str, path: Path) -> WeightsInfo:
    """What a resolved weights file is; a stand-in that fails its hash (accepted only inside
    ``sources.allow_unverified_for_tests``) is recorded with its own hash as UNVERIFIED."""
    source = registry.WEIGHTS[name]
    status = sources.check(name, path)
    digest = source.sha256 if status == "verified" and source.sha256 else sources.sha256_file(path)
    note = source.note if status in ("verified", "unpinned") else f"{status}. {source.note}"
    return WeightsInfo(
        source=name, path=str(path), sha256=digest, fp16_rounded=False, note=note.strip()
    )


def resolve_sources(
    *,
    gan: bool,
    generator_init: str = "pretrained",
    discriminator_init: str = "pretrained",
    perceptual_weight: float = 1.0,
    net_d_init_iters: int = 0,
    download: bool = True,
) -> TrainingSources:
    """Find the initial weights a run needs; raise SourceError for a missing required one.

    ``generator_init``: ``pretrained`` (RealESRGAN_x4plus, official or the ncnn copy, see
    :func:`cxrsr_utils.sr.networks.pretrained_generator_state`) or ``scratch``.
    ``discriminator_init``: ``pretrained`` (RealESRGAN_x4plus_netD) or ``scratch``; ignored
    without GAN. VGG19 is resolved only when ``perceptual_weight > 0``.
    """
    for arg, value in (
        ("generator_init", generator_init),
        ("discriminator_init", discriminator_init),
    ):
        if value not in ("pretrained", "scratch"):
            raise ValueError(f"{arg} must be 'pretrained' or 'scratch', got {value!r}.")
    notes: dict[str, str] = {}
    generator = None
    if generator_init == "pretrained":
        _, generator = pretrained_generator_state(download=download)
    else:
        notes["generator"] = "random initialisation (generator_init=scratch)"
    discriminator = None
    if not gan:
        notes["discriminator"] = "not used: pixel loss only"
    elif discriminator_init == "pretrained":
        discriminator = _file_info(
            "RealESRGAN_x4plus_netD",
            _resolve_or_explain("RealESRGAN_x4plus_netD", download, "discriminator_init='scratch'"),
        )
    else:
        notes["discriminator"] = (
            f"trained from scratch (discriminator_init=scratch) with a {net_d_init_iters}-"
            "iteration warm-up in which only the discriminator learns (net_d_init_iters)"
        )
    vgg = None
    if perceptual_weight > 0:
        vgg = _file_info("vgg19", _resolve_or_explain("vgg19", download, "perceptual_weight=0"))
    else:
        notes["vgg19"] = "not used: perceptual weight 0"
    return TrainingSources(generator, discriminator, vgg, notes)


def _resolve_or_explain(name: str, download: bool, alternative: str) -> Path:
    try:
        return sources.resolve(name, download=download)
    except sources.SourceError as exc:
        raise sources.SourceError(
            f"{exc} This training setting needs {name}; to train without it (the quick "
            f"setting) use {alternative}."
        ) from exc
