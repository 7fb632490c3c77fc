"""The basicsr option dict of a fine-tuning run, built from :class:`FinetuneParams`.

:func:`build_options` turns a :class:`~cxrsr_utils.core.params_networks.FinetuneParams` (whose
defaults are the paper's protocol; they live there and nowhere else) plus where the data and
outputs are into the option dict that basicsr's dataset, model, losses and schedulers read, with
realesrgan's values for everything the study does not vary. The recipe's digest is
:func:`cxrsr_utils.finetune.identity.options_digest`; the options as a file,
:mod:`cxrsr_utils.finetune.option_files`; on several GPUs or CPU processes,
:mod:`cxrsr_utils.finetune.torchrun`.

Offline, the discriminator (RealESRGAN_x4plus_netD) and VGG19 cannot be fetched. The
parameters say what replaces them: ``discriminator_init="scratch"`` trains the discriminator
from scratch with basicsr's warm-up (``net_d_init_iters``: the generator waits that many
iterations) and ``perceptual_weight=0`` drops the perceptual loss. Asking for them when they
are missing raises :class:`cxrsr_utils.external.sources.SourceError` with the fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from cxrsr_utils.core import cpu
from cxrsr_utils.core.device import torch_device
from cxrsr_utils.core.params import FinetuneParams
from cxrsr_utils.degradation import options as degrade_options
from cxrsr_utils.external import sources
from cxrsr_utils.finetune.option_sections import (
    dataset_options,
    logger_options,
    path_options,
    process_options,
    train_options,
)
from cxrsr_utils.finetune.speed import SPEED_OPTION, speed_options
from cxrsr_utils.finetune.start_weights import TrainingSources, resolve_sources
from cxrsr_utils.finetune.validation import VALIDATION_OPTION
from cxrsr_utils.sr.networks import X4PLUS_DISCRIMINATOR, X4PLUS_GENERATOR

MODEL_TYPE = "CxrRealESRGANModel"  # registered by cxrsr_utils.finetune.model
# Named training variants: (degradation mode, loss). "matched" = the evaluation's bicubic x4.
VARIANTS: dict[str, tuple[str, str]] = {
    "paper": ("realesrgan", "gan"),
    "matched": ("bicubic", "gan"),
    "l1": ("realesrgan", "l1"),
    "matched_l1": ("bicubic", "l1"),
}


def iterations_for_epochs(
    n_images: int, batch_size: int, epochs: int, dataset_enlarge_ratio: int = 1
) -> int:
    """Iterations of ``epochs`` passes with full batches (basicsr drops the last partial one).

    The paper: 8100 images, batch 10, 8 epochs -> 6480.
    """
    per_epoch = (n_images * dataset_enlarge_ratio) // batch_size
    if per_epoch == 0:
        raise ValueError(f"{n_images} images make no full batch of {batch_size}.")
    return per_epoch * epochs


def count_images(meta_info: str | os.PathLike[str]) -> int:
    """Images listed in a realesrgan meta_info file (one per non-empty line)."""
    return sum(1 for line in Path(meta_info).read_text().splitlines() if line.strip())


def build_options(
    finetune: FinetuneParams,
    *,
    name: str,
    dataroot_gt: str | os.PathLike[str],
    meta_info: str | os.PathLike[str],
    experiments_root: str | os.PathLike[str],
    variant: str,
    seed: int,
    device: str,
    degradation: Mapping[str, Any] | None = None,
    dataset_enlarge_ratio: int = 1,
    use_tb_logger: bool = True,
    generator_arch: Mapping[str, Any] | None = None,
    discriminator_arch: Mapping[str, Any] | None = None,
    download: bool = True,
    validation: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The basicsr option dict of one training run of ``finetune``'s recipe.

    ``variant`` picks the degradation and loss: ``paper`` (Real-ESRGAN degradation, L1 +
    perceptual + GAN), ``matched`` (bicubic x4 as in the evaluation), ``l1`` (L1 only, no
    GAN, PSNR-oriented) and ``matched_l1``. L1 compares with the USM-sharpened HR with GAN,
    as realesrgan, and with the plain HR for the L1-only variants, whose aim is fidelity to
    the HR. ``degradation`` is :func:`cxrsr_utils.degradation.options.degradation_options` (its
    defaults when None). ``finetune.total_iter``, or else ``finetune.epochs`` over the images
    of ``meta_info``, sets the length. A missing discriminator or VGG19 stops with
    :class:`~cxrsr_utils.external.sources.SourceError` now (:func:`resolve_sources`).
    ``device`` is ``auto``/``cpu``/``cuda`` (precision and speed: :func:`_cxrsr_options`).
    ``generator_arch``/``discriminator_arch`` override the x4plus networks (tiny in tests; a
    pretrained generator needs the x4plus shape). With ``validation``
    (:func:`cxrsr_utils.finetune.validation.validation_options`) the run is validated and
    exports the generator its rule chooses; without it the last, unvalidated.
    """
    gan, network_g, network_d = _cell(finetune, variant, generator_arch, discriminator_arch)
    meta, n_images, total_iter = _training_length(finetune, meta_info, dataset_enlarge_ratio)
    deg = _degradation(degradation, gan)
    src = _sources(finetune, gan, download)
    dev = torch_device(device)
    cxrsr = _cxrsr_options(finetune, variant, dev, n_images, meta, src, validation)
    root = Path(experiments_root).resolve()
    dataset = dataset_options(finetune, name, dataroot_gt, meta, deg, dataset_enlarge_ratio)
    return {
        "name": name,
        "model_type": MODEL_TYPE,
        "scale": 4,
        **process_options(dev, seed, root),
        **{k: deg[k] for k in degrade_options.PIPELINE_KEYS},
        "gt_size": finetune.gt_size,
        "queue_size": finetune.queue_size,
        "datasets": {"train": dataset},
        "network_g": network_g,
        "path": path_options(root, src, gan),
        "train": train_options(finetune, gan, total_iter),
        "logger": logger_options(finetune, use_tb_logger),
        "dist_params": {"backend": None},
        "cxrsr": cxrsr,
        **({"network_d": network_d} if gan else {}),
    }


def _cxrsr_options(
    ft: FinetuneParams,
    variant: str,
    device: str,
    n_images: int,
    meta_info: Path,
    src: TrainingSources,
    validation: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The study's own options (``opt["cxrsr"]``): the variant's cell, precision, device,
    training data and weights; the speed switches and the validation settings when given.

    ``finetune.autocast`` ``auto`` is bf16 only where the CPU has native bf16 (or on a GPU);
    the speed switches (channels_last, compile, cudnn_benchmark:
    :mod:`cxrsr_utils.finetune.speed`) go under ``cxrsr.speed`` when on; ``validation`` under
    ``cxrsr.validation``.
    """
    mode, loss = _variant(variant)
    autocast = _autocast(ft.autocast, device)
    speed = speed_options(ft, device)
    return {
        "variant": variant,
        "degradation": mode,
        "loss": loss,
        "autocast": autocast,
        "batch_size": ft.batch_size,
        "device": device,
        "n_images": n_images,
        "meta_info_sha256": sources.sha256_file(meta_info),
        "sources": src.to_dict(),
        # Only when a switch is on: options built with all of them off stay as they were.
        **({SPEED_OPTION: speed} if speed else {}),
        **({VALIDATION_OPTION: dict(validation)} if validation else {}),
    }


def _cell(
    ft: FinetuneParams,
    variant: str,
    generator_arch: Mapping[str, Any] | None,
    discriminator_arch: Mapping[str, Any] | None,
) -> tuple[bool, dict[str, Any], dict[str, Any]]:
    """The variant's design cell, checked: with a GAN or not, and its two networks."""
    _, loss = _variant(variant)
    gan = loss == "gan"
    _check_recipe(ft)
    network_g, network_d = _networks(ft, gan, generator_arch, discriminator_arch)
    return gan, network_g, network_d


def _training_length(
    ft: FinetuneParams, meta_info: str | os.PathLike[str], dataset_enlarge_ratio: int
) -> tuple[Path, int, int]:
    """The training list (resolved), its number of images and the run's iterations."""
    meta = Path(meta_info).resolve()
    n_images = _training_images(meta, ft.batch_size, dataset_enlarge_ratio)
    return meta, n_images, _total_iter(ft, n_images, dataset_enlarge_ratio)


def _sources(ft: FinetuneParams, gan: bool, download: bool) -> TrainingSources:
    return resolve_sources(
        gan=gan,
        generator_init=ft.generator_init,
        discriminator_init=ft.discriminator_init,
        perceptual_weight=ft.perceptual_weight if gan else 0.0,
        net_d_init_iters=ft.net_d_init_iters,
        download=download,
    )


def _variant(variant: str) -> tuple[str, str]:
    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; use one of {sorted(VARIANTS)}.")
    return VARIANTS[variant]


def _check_recipe(ft: FinetuneParams) -> None:
    """What realesrgan's pieces need beyond FinetuneParams' own bounds."""
    if ft.gt_size % 4 or ft.gt_size < 32 or ft.gt_size > 400:
        raise ValueError(
            f"gt_size must be a multiple of 4 in [32, 400] (realesrgan crops from "
            f"400x400 patches), got {ft.gt_size}."
        )
    if ft.queue_size % ft.batch_size:
        raise ValueError(
            f"queue_size {ft.queue_size} must be divisible by batch_size "
            f"{ft.batch_size} (realesrgan's training-pair pool)."
        )


def _networks(
    ft: FinetuneParams,
    gan: bool,
    generator_arch: Mapping[str, Any] | None,
    discriminator_arch: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    network_g = dict(generator_arch or X4PLUS_GENERATOR)
    if ft.generator_init == "pretrained" and network_g != X4PLUS_GENERATOR:
        raise ValueError(
            "A pretrained generator needs the RealESRGAN_x4plus architecture; "
            "use generator_init='scratch' with a custom generator_arch."
        )
    network_d = dict(discriminator_arch or X4PLUS_DISCRIMINATOR)
    if gan and ft.discriminator_init == "pretrained" and network_d != X4PLUS_DISCRIMINATOR:
        raise ValueError(
            "A pretrained discriminator needs the x4plus netD architecture; use "
            "discriminator_init='scratch' with a custom discriminator_arch."
        )
    return network_g, network_d


def _training_images(meta_info: Path, batch_size: int, dataset_enlarge_ratio: int) -> int:
    if not meta_info.is_file():
        raise FileNotFoundError(
            f"meta_info file {meta_info} does not exist; it lists the "
            "training images relative to dataroot_gt, one per line."
        )
    n_images = count_images(meta_info)
    if n_images * dataset_enlarge_ratio < batch_size:
        raise ValueError(
            f"{meta_info} lists {n_images} images, fewer than one batch of "
            f"{batch_size}; add images or raise dataset_enlarge_ratio."
        )
    return n_images


def _total_iter(ft: FinetuneParams, n_images: int, dataset_enlarge_ratio: int) -> int:
    """``finetune.total_iter``, or else ``finetune.epochs`` over the training images."""
    if ft.total_iter is not None:
        return ft.total_iter
    if ft.epochs is None:  # FinetuneParams asks for exactly one of the two
        raise ValueError("give finetune.total_iter or finetune.epochs")
    return iterations_for_epochs(n_images, ft.batch_size, ft.epochs, dataset_enlarge_ratio)


def _degradation(degradation: Mapping[str, Any] | None, gan: bool) -> dict[str, Any]:
    deg = dict(degradation) if degradation is not None else degrade_options.degradation_options()
    deg["l1_gt_usm"] = gan  # L1 against the USM-sharpened HR with GAN only (see build_options)
    return degrade_options.degradation_options(**deg)  # validates every value


def _autocast(requested: Literal["auto", "bf16"] | None, device: str) -> Literal["bf16"] | None:
    """``finetune.autocast`` as the model takes it: None or ``bf16`` (``auto`` resolved)."""
    resolved: Literal["bf16"] | None = None
    if requested == "auto":
        resolved = None if cpu.resolve_precision("auto", device) == "fp32" else "bf16"
    elif requested == "bf16":
        resolved = "bf16"
    if resolved:
        cpu.resolve_precision(resolved, device)  # warns where the CPU only emulates bf16
    return resolved
