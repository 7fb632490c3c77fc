"""The basicsr option dict of a fine-tuning run, built from :class:`FinetuneParams`.

:func:`build_options` turns a :class:`~cxrsr_utils.core.params_networks.FinetuneParams` (whose
defaults are the paper's protocol; they live there and nowhere else) plus where the data and outputs
are into the option dict that basicsr's dataset, model, losses and schedulers read, with
realesrgan's values for everything the study does not vary. :func:`options_digest` names a recipe
independently of paths and process layout (a fine-tune folder's identity); :func:`torchrun_command`
runs the same options on several GPUs or CPU processes.

Offline, the discriminator (RealESRGAN_x4plus_netD) and VGG19 cannot be fetched. The
parameters say what replaces them: ``discriminator_init="scratch"`` trains the discriminator
from scratch with basicsr's warm-up (``net_d_init_iters``: the generator waits that many
iterations) and ``perceptual_weight=0`` drops the perceptual loss. Asking for them when they
are missing raises :class:`cxrsr_utils.external.sources.SourceError` with the fix.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from cxrsr_utils.core import cpu
from cxrsr_utils.core.atomic import write_text
from cxrsr_utils.core.device import torch_device
from cxrsr_utils.core.params_networks import FinetuneParams
from cxrsr_utils.degradation import options as degrade_options
from cxrsr_utils.external import sources
from cxrsr_utils.finetune.speed import SPEED_OPTION, speed_options
from cxrsr_utils.finetune.start_weights import TrainingSources, resolve_sources
from cxrsr_utils.finetune.validation import VALIDATION_OPTION
from cxrsr_utils.sr.networks import X4PLUS_DISCRIMINATOR, X4PLUS_GENERATOR

MODEL_TYPE = "CxrRealESRGANModel"  # registered by cxrsr_utils.finetune.model
# VGG19 features before ReLU, as in realesrgan's finetune options.
PERCEPTUAL_LAYERS: dict[str, float] = {
    "conv1_2": 0.1,
    "conv2_2": 0.1,
    "conv3_4": 1.0,
    "conv4_4": 1.0,
    "conv5_4": 1.0,
}
# Named training variants: (degradation mode, loss). "matched" = the evaluation's bicubic x4.
VARIANTS: dict[str, tuple[str, str]] = {
    "paper": ("realesrgan", "gan"),
    "matched": ("bicubic", "gan"),
    "l1": ("realesrgan", "l1"),
    "matched_l1": ("bicubic", "l1"),
}
# Options that say where and how a run executes, not what it trains (see options_digest).
_MACHINE_KEYS = (
    "path",
    "logger",
    "launcher",
    "dist_params",
    "num_gpu",
    "dist",
    "rank",
    "world_size",
    "root_path",
    "auto_resume",
)


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
    of ``meta_info``, sets the length.

    Initial weights are resolved here (see :func:`resolve_sources`), so a missing
    discriminator or VGG19 stops with :class:`~cxrsr_utils.external.sources.SourceError` now.
    ``device`` is ``auto``/``cpu``/``cuda``; ``finetune.autocast`` ``auto`` is bf16 only where
    the CPU has native bf16 (or on a GPU); the speed switches (channels_last, compile,
    cudnn_benchmark: :mod:`cxrsr_utils.finetune.speed`) go under ``cxrsr.speed`` when on.
    ``generator_arch``/``discriminator_arch`` override the x4plus networks (tests use tiny
    ones; a pretrained generator needs the x4plus shape). ``validation``
    (:func:`cxrsr_utils.finetune.validation.validation_options`) goes under
    ``cxrsr.validation``: the run is then validated and exports the generator its rule
    chooses; without it the last generator is exported unvalidated.
    """
    ft = finetune
    mode, loss = _variant(variant)
    gan = loss == "gan"
    _check_recipe(ft)
    network_g, network_d = _networks(ft, gan, generator_arch, discriminator_arch)
    meta_info = Path(meta_info).resolve()
    n_images = _training_images(meta_info, ft.batch_size, dataset_enlarge_ratio)
    total_iter = _total_iter(ft, n_images, dataset_enlarge_ratio)
    deg = _degradation(degradation, gan)
    src = _sources(ft, gan, download)
    dev = torch_device(device)
    autocast = _autocast(ft.autocast, dev)
    speed = speed_options(ft, dev)
    root = Path(experiments_root).resolve()
    dataset = _dataset_options(
        ft, name, Path(dataroot_gt).resolve(), meta_info, deg, dataset_enlarge_ratio
    )
    return {
        "name": name,
        "model_type": MODEL_TYPE,
        "scale": 4,
        **_process_options(dev, seed, root),
        **{k: deg[k] for k in degrade_options.PIPELINE_KEYS},
        "gt_size": ft.gt_size,
        "queue_size": ft.queue_size,
        "datasets": {"train": dataset},
        "network_g": network_g,
        "path": _path_options(root, src, gan),
        "train": _train_options(ft, gan, total_iter),
        "logger": _logger_options(ft, use_tb_logger),
        "dist_params": {"backend": None},
        "cxrsr": {
            "variant": variant,
            "degradation": mode,
            "loss": loss,
            "autocast": autocast,
            "batch_size": ft.batch_size,
            "device": dev,
            "n_images": n_images,
            "meta_info_sha256": sources.sha256_file(meta_info),
            "sources": src.to_dict(),
            # Only when a switch is on: options built with all of them off stay as they were.
            **({SPEED_OPTION: speed} if speed else {}),
            **({VALIDATION_OPTION: dict(validation)} if validation else {}),
        },
        **({"network_d": network_d} if gan else {}),
    }


def _sources(ft: FinetuneParams, gan: bool, download: bool) -> TrainingSources:
    return resolve_sources(
        gan=gan,
        generator_init=ft.generator_init,
        discriminator_init=ft.discriminator_init,
        perceptual_weight=ft.perceptual_weight if gan else 0.0,
        net_d_init_iters=ft.net_d_init_iters,
        download=download,
    )


def _process_options(device: str, seed: int, root: Path) -> dict[str, Any]:
    """One process on ``device`` (see :func:`distributed_options` for several)."""
    return {
        "num_gpu": 1 if device == "cuda" else 0,
        "manual_seed": seed,
        "is_train": True,
        "dist": False,
        "launcher": "none",
        "rank": 0,
        "world_size": 1,
        "auto_resume": True,
        "root_path": str(root),
    }


def _logger_options(ft: FinetuneParams, use_tb_logger: bool) -> dict[str, Any]:
    return {
        "print_freq": ft.print_freq,
        "save_checkpoint_freq": ft.save_checkpoint_freq,
        "use_tb_logger": use_tb_logger,
        "wandb": {"project": None, "resume_id": None},
    }


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


def _dataset_options(
    ft: FinetuneParams,
    name: str,
    dataroot_gt: Path,
    meta_info: Path,
    deg: Mapping[str, Any],
    dataset_enlarge_ratio: int,
) -> dict[str, Any]:
    """realesrgan's RealESRGANDataset: HR crops, flips, and the blur kernels of each draw."""
    return {
        "name": name,
        "type": "RealESRGANDataset",
        "phase": "train",
        "scale": 4,
        "dataroot_gt": str(dataroot_gt),
        "meta_info": str(meta_info),
        "io_backend": {"type": "disk"},
        **{k: deg[k] for k in degrade_options.KERNEL_KEYS},
        "gt_size": ft.gt_size,
        "use_hflip": True,
        "use_rot": False,
        "use_shuffle": True,
        "num_worker_per_gpu": ft.num_workers,
        "batch_size_per_gpu": ft.batch_size,
        "dataset_enlarge_ratio": dataset_enlarge_ratio,
        "prefetch_mode": None,
    }


def _train_options(ft: FinetuneParams, gan: bool, total_iter: int) -> dict[str, Any]:
    """Optimizers, schedule and losses (realesrgan's finetune values where the study has none)."""
    train_opt: dict[str, Any] = {
        "ema_decay": ft.ema_decay,
        "optim_g": {"type": "Adam", "lr": ft.lr_g, "weight_decay": 0, "betas": list(ft.betas)},
        "scheduler": {"type": "MultiStepLR", "milestones": [], "gamma": 0.5},
        "total_iter": total_iter,
        "warmup_iter": -1,
        "pixel_opt": {"type": "L1Loss", "loss_weight": ft.pixel_weight, "reduction": "mean"},
    }
    if not gan:
        return train_opt
    train_opt["optim_d"] = {
        "type": "Adam",
        "lr": ft.lr_d,
        "weight_decay": 0,
        "betas": list(ft.betas),
    }
    if ft.perceptual_weight > 0:
        train_opt["perceptual_opt"] = {
            "type": "PerceptualLoss",
            "layer_weights": dict(PERCEPTUAL_LAYERS),
            "vgg_type": "vgg19",
            "use_input_norm": True,
            "perceptual_weight": ft.perceptual_weight,
            "style_weight": 0,
            "range_norm": False,
            "criterion": "l1",
        }
    train_opt["gan_opt"] = {
        "type": "GANLoss",
        "gan_type": "vanilla",
        "real_label_val": 1.0,
        "fake_label_val": 0.0,
        "loss_weight": ft.gan_weight,
    }
    train_opt["net_d_iters"] = 1
    train_opt["net_d_init_iters"] = ft.net_d_init_iters
    return train_opt


def _path_options(root: Path, src: TrainingSources, gan: bool) -> dict[str, Any]:
    """basicsr's folders under the experiments root, and the initial weights."""
    path = {
        "pretrain_network_g": src.generator.path if src.generator else None,
        "param_key_g": "params_ema",
        "strict_load_g": True,
        "resume_state": None,
        "experiments_root": str(root),
        "models": str(root / "models"),
        "training_states": str(root / "training_states"),
        "log": str(root),
        "visualization": str(root / "visualization"),
        "tb_logger": str(root / "tb_logger"),
        "vgg19": src.vgg19.path if src.vgg19 else None,
    }
    if gan:
        path.update(
            pretrain_network_d=src.discriminator.path if src.discriminator else None,
            param_key_d="params",
            strict_load_d=True,
        )
    return path


def options_digest(opt: Mapping[str, Any]) -> str:
    """SHA-256 of the training recipe: the options without paths, logging and process layout.

    Two runs with the same digest train the same thing (same data list, networks, losses,
    degradation, schedule, seed), wherever their files are, however many processes run and
    whichever speed switches are on.
    """
    recipe = {k: copy.deepcopy(v) for k, v in opt.items() if k not in _MACHINE_KEYS}
    # The speed switches change how fast a step runs, not what it trains (like the number of
    # data-loader workers below): a run keeps its identity, and its checkpoints, with them
    # toggled. (Absent when off, so they could not change old digests either way.)
    recipe.get("cxrsr", {}).pop(SPEED_OPTION, None)
    # Validation reads the weights and changes neither them nor any random state: the same
    # recipe trains the same weights with or without it. Which generator it exports is in the
    # run identity instead (finetune_validation.validation_digest).
    recipe.get("cxrsr", {}).pop(VALIDATION_OPTION, None)
    train_set = recipe.get("datasets", {}).get("train", {})
    for key in ("dataroot_gt", "meta_info", "num_worker_per_gpu", "batch_size_per_gpu"):
        train_set.pop(key, None)
    for info in recipe.get("cxrsr", {}).get("sources", {}).values():
        if isinstance(info, dict):
            # The weights are identified by their SHA-256; where they lie and how they were
            # found (a note may quote a failed download) do not change what is trained.
            info.pop("path", None)
            info.pop("note", None)
    blob = json.dumps(recipe, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def write_options(opt: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write an option dict as YAML (atomically), for basicsr-style records and torchrun."""
    return write_text(path, yaml.safe_dump(_plain(opt), sort_keys=False))


def read_options(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an option file written by :func:`write_options`."""
    with open(path) as f:
        return yaml.safe_load(f)


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [_plain(v) for v in obj]
    return obj


def distributed_options(
    opt: Mapping[str, Any], *, nproc: int, backend: str | None = None
) -> dict[str, Any]:
    """Options for ``nproc`` processes (one per GPU, or CPU processes) keeping the global batch.

    ``backend`` defaults to NCCL on GPUs and gloo on CPU.
    """
    if nproc < 1:
        raise ValueError(f"nproc must be at least 1, got {nproc}.")
    out = copy.deepcopy(dict(opt))
    batch = out["cxrsr"]["batch_size"]
    if batch % nproc:
        good = [n for n in range(1, batch + 1) if batch % n == 0]
        raise ValueError(
            f"The global batch {batch} does not split over {nproc} processes; use "
            f"nproc in {good} or change batch_size."
        )
    per_proc = batch // nproc
    if out["queue_size"] % per_proc:
        raise ValueError(
            f"queue_size {out['queue_size']} must be divisible by the per-process batch {per_proc}."
        )
    cuda = out["cxrsr"]["device"] == "cuda"
    out["datasets"]["train"]["batch_size_per_gpu"] = per_proc
    out["launcher"] = "pytorch"
    out["dist_params"] = {"backend": backend or ("nccl" if cuda else "gloo")}
    return out


def torchrun_command(
    opt: Mapping[str, Any],
    *,
    nproc: int,
    opt_path: str | os.PathLike[str],
    generator_path: str | os.PathLike[str],
    model_card_path: str | os.PathLike[str],
    backend: str | None = None,
    params_hash: str | None = None,
    data_manifest_hash: str | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """The command that trains ``opt`` on ``nproc`` GPUs (or CPU processes), and its options.

    The options (see :func:`distributed_options`) are written to ``opt_path``; the command is
    ``python -m torch.distributed.run --standalone --nproc_per_node N -m cxrsr_utils.finetune.steps
    --opt <opt_path> ...`` (``torchrun`` itself, without relying on it being on PATH).
    """
    dist_opt = distributed_options(opt, nproc=nproc, backend=backend)
    write_options(dist_opt, opt_path)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "cxrsr_utils.finetune.steps",
        "--opt",
        str(opt_path),
        "--generator-path",
        str(generator_path),
        "--model-card",
        str(model_card_path),
    ]
    if params_hash:
        cmd += ["--params-hash", params_hash]
    if data_manifest_hash:
        cmd += ["--data-manifest-hash", data_manifest_hash]
    return cmd, dist_opt
