"""Fine-tuning Real-ESRGAN on chest X-rays through realesrgan/basicsr's own training pieces.

:func:`build_options` turns explicit arguments into a basicsr option dict (the paper's
values are the defaults), :func:`train` runs it on CPU or one GPU, and
:func:`torchrun_command` gives the command line that runs the same options on several GPUs
(or CPU processes). Training uses basicsr's dataset, sampler, data loader, networks,
losses, optimizers, schedulers, EMA and checkpoint format, and realesrgan's
``RealESRGANModel`` through one registered subclass, :class:`CxrRealESRGANModel`.

What breaks off-GPU in realesrgan/basicsr, and where it is solved (once each, no edits to
site-packages):

- ``RealESRGANModel.__init__`` builds DiffJPEG and USMSharp with ``.cuda()``;
  ``_dequeue_and_enqueue`` makes its pair pool with ``.cuda()``:
  :class:`CxrRealESRGANModel` builds them on the model's device.
- On CPU, DiffJPEG returns a non-contiguous tensor that ``filter2D`` cannot ``.view()``:
  :func:`cxrsr_utils.degrade.degrade_batch`, the model's degradation, makes it contiguous.
- ``BaseModel.save_network`` writes straight to the final path and, after three failed
  tries, logs "Just ignore it" and returns: ``CxrRealESRGANModel.save_network`` writes
  every checkpoint file through :mod:`cxrsr_utils.checkpoints` (temporary file, loaded back,
  renamed; an error raises), and resume falls back past checkpoints that do not load.
- DDP on CPU: basicsr passes ``device_ids=[torch.cuda.current_device()]``:
  ``CxrRealESRGANModel.model_to_device``.
- ``basicsr.train.load_resume_state`` calls ``torch.cuda.current_device()`` and looks in
  ``./experiments``; ``realesrgan/train.py`` takes site-packages as its root folder and
  ``train_pipeline`` reads ``sys.argv``; basicsr's ``init_dist`` forces NCCL and divides by
  the GPU count: :func:`train` is our own small loop over basicsr's pieces with an explicit
  option dict and explicit paths, and :func:`_init_distributed` picks gloo on CPU.

Offline, the discriminator (RealESRGAN_x4plus_netD) and VGG19 cannot be fetched. The
options say what replaces them: ``discriminator_init="scratch"`` trains the discriminator
from scratch with basicsr's warm-up (``net_d_init_iters``: the generator waits that many
iterations) and ``perceptual_weight=0`` drops the perceptual loss. Asking for them when they
are missing raises :class:`cxrsr_utils.sources.SourceError` with the fix.
"""

from __future__ import annotations

from cxrsr_utils import sr_backend  # noqa: F401  (the basicsr import shim, before basicsr)

# isort: split

import argparse
import contextlib
import copy
import csv
import hashlib
import importlib.metadata
import io as stdio
import json
import logging
import os
import resource
import shutil
import sys
import time
import types
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml
from basicsr.archs import vgg_arch
from basicsr.data import build_dataloader, build_dataset
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.data.transforms import paired_random_crop
from basicsr.models import build_model
from basicsr.models.sr_model import SRModel
from basicsr.models.srgan_model import SRGANModel
from basicsr.utils import MessageLogger, get_root_logger, init_tb_logger, set_random_seed
from basicsr.utils.dist_util import get_dist_info, master_only
from basicsr.utils.misc import check_resume
from basicsr.utils.registry import MODEL_REGISTRY
from torch.nn.parallel import DistributedDataParallel

from cxrsr_utils import checkpoints, cpu, degrade, provenance, sources, stamps
from cxrsr_utils.io import atomic_path, write_text
from cxrsr_utils.layout import StudyLayout, as_layout
from cxrsr_utils.models import (
    X4PLUS_DISCRIMINATOR,
    X4PLUS_GENERATOR,
    WeightsInfo,
    pretrained_generator_state,
    save_torch,
)
from cxrsr_utils.repro import rng_state, set_rng_state, torch_device
from cxrsr_utils.sr_backend import DiffJPEG, RealESRGANModel, USMSharp

MODEL_TYPE = "CxrRealESRGANModel"

# VGG19 features before ReLU, as in realesrgan's finetune options.
PERCEPTUAL_LAYERS: dict[str, float] = {
    "conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0,
}

# Named training variants: (degradation mode, loss). "matched" = the evaluation's bicubic x4.
VARIANTS: dict[str, tuple[str, str]] = {
    "paper": ("realesrgan", "gan"),
    "matched": ("bicubic", "gan"),
    "l1": ("realesrgan", "l1"),
    "matched_l1": ("bicubic", "l1"),
}

GAN_LOG_KEYS = ("l_g_pix", "l_g_percep", "l_g_gan", "l_d_real", "out_d_real", "l_d_fake",
                "out_d_fake")
L1_LOG_KEYS = ("l_g_pix",)
CSV_BASE_COLUMNS = ("iter", "epoch", "lr_g", "lr_d", "time_s", "data_time_s", "elapsed_s")
LOSS_CSV = "loss_log.csv"


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


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

        return cls(info("generator"), info("discriminator"), info("vgg19"),
                   dict(data.get("notes", {})))


def _file_info(name: str, path: Path) -> WeightsInfo:
    """What a resolved weights file is; a stand-in that fails its hash (accepted only inside
    ``sources.allow_unverified_for_tests``) is recorded with its own hash as UNVERIFIED."""
    source = sources.WEIGHTS[name]
    status = sources.check(name, path)
    digest = (source.sha256 if status == "verified" and source.sha256
              else sources.sha256_file(path))
    note = source.note if status in ("verified", "unpinned") else f"{status}. {source.note}"
    return WeightsInfo(source=name, path=str(path), sha256=digest, fp16_rounded=False,
                       note=note.strip())


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
    :func:`cxrsr_utils.models.pretrained_generator_state`) or ``scratch``.
    ``discriminator_init``: ``pretrained`` (RealESRGAN_x4plus_netD) or ``scratch``; ignored
    without GAN. VGG19 is resolved only when ``perceptual_weight > 0``.
    """
    for arg, value in (("generator_init", generator_init),
                       ("discriminator_init", discriminator_init)):
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
            "RealESRGAN_x4plus_netD", _resolve_or_explain("RealESRGAN_x4plus_netD", download,
                                                          "discriminator_init='scratch'"))
    else:
        notes["discriminator"] = (
            f"trained from scratch (discriminator_init=scratch) with a {net_d_init_iters}-"
            "iteration warm-up in which only the discriminator learns (net_d_init_iters)")
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


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


def iterations_for_epochs(n_images: int, batch_size: int, epochs: int,
                          dataset_enlarge_ratio: int = 1) -> int:
    """Iterations of ``epochs`` passes with full batches (basicsr drops the last partial one).

    The paper: 8100 images, batch 10, 8 epochs -> 6480.
    """
    per_epoch = (n_images * dataset_enlarge_ratio) // batch_size
    if per_epoch == 0:
        raise ValueError(f"{n_images} images make no full batch of {batch_size}.")
    return per_epoch * epochs


def build_options(
    *,
    name: str,
    dataroot_gt: str | os.PathLike[str],
    meta_info: str | os.PathLike[str],
    experiments_root: str | os.PathLike[str],
    variant: str = "paper",
    total_iter: int = 6480,
    batch_size: int = 10,
    gt_size: int = 256,
    lr_g: float = 1e-4,
    lr_d: float = 1e-4,
    betas: Sequence[float] = (0.9, 0.99),
    lr_milestones: Sequence[int] = (),
    pixel_weight: float = 1.0,
    perceptual_weight: float = 1.0,
    gan_weight: float = 0.1,
    ema_decay: float = 0.999,
    net_d_init_iters: int = 0,
    generator_init: str = "pretrained",
    discriminator_init: str = "pretrained",
    l1_gt_usm: bool | None = None,
    use_hflip: bool = True,
    use_rot: bool = False,
    queue_size: int = 180,
    seed: int = 0,
    device: str = "auto",
    num_workers: int = 0,
    dataset_enlarge_ratio: int = 1,
    save_checkpoint_freq: int = 500,
    print_freq: int = 10,
    use_tb_logger: bool = True,
    autocast: str | None = None,
    degradation: Mapping[str, Any] | None = None,
    generator_arch: Mapping[str, Any] | None = None,
    discriminator_arch: Mapping[str, Any] | None = None,
    download: bool = True,
) -> dict[str, Any]:
    """The basicsr option dict of one training run; the defaults are the paper's protocol.

    ``variant`` picks the degradation and loss: ``paper`` (Real-ESRGAN degradation, L1 +
    perceptual + GAN), ``matched`` (bicubic x4 as in the evaluation), ``l1`` (L1 only, no
    GAN, PSNR-oriented) and ``matched_l1``. ``l1_gt_usm`` (does L1 compare with the
    USM-sharpened HR?) defaults to True with GAN, as realesrgan, and False for the L1-only
    variants, whose aim is fidelity to the HR. ``degradation`` is
    :func:`cxrsr_utils.degrade.degradation_options` (its defaults when None).

    Initial weights are resolved here (see :func:`resolve_sources`), so a missing
    discriminator or VGG19 stops with :class:`~cxrsr_utils.sources.SourceError` now.
    ``device`` is ``auto``/``cpu``/``cuda``; ``autocast`` is None or ``"bf16"``.
    ``generator_arch``/``discriminator_arch`` override the x4plus networks (tests use tiny
    ones; a pretrained generator needs the x4plus shape).
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; use one of {sorted(VARIANTS)}.")
    mode, loss = VARIANTS[variant]
    gan = loss == "gan"
    if autocast not in (None, "bf16"):
        raise ValueError(f"autocast must be None or 'bf16', got {autocast!r}.")
    if gt_size % 4 or gt_size < 32 or gt_size > 400:
        raise ValueError(f"gt_size must be a multiple of 4 in [32, 400] (realesrgan crops from "
                         f"400x400 patches), got {gt_size}.")
    if queue_size % batch_size:
        raise ValueError(f"queue_size {queue_size} must be divisible by batch_size {batch_size} "
                         "(realesrgan's training-pair pool).")
    for arg, value in (("total_iter", total_iter), ("batch_size", batch_size),
                       ("save_checkpoint_freq", save_checkpoint_freq),
                       ("print_freq", print_freq)):
        if value < 1:
            raise ValueError(f"{arg} must be at least 1, got {value}.")
    network_g = dict(generator_arch or X4PLUS_GENERATOR)
    if generator_init == "pretrained" and network_g != X4PLUS_GENERATOR:
        raise ValueError("A pretrained generator needs the RealESRGAN_x4plus architecture; "
                         "use generator_init='scratch' with a custom generator_arch.")
    network_d = dict(discriminator_arch or X4PLUS_DISCRIMINATOR)
    if gan and discriminator_init == "pretrained" and network_d != X4PLUS_DISCRIMINATOR:
        raise ValueError("A pretrained discriminator needs the x4plus netD architecture; use "
                         "discriminator_init='scratch' with a custom discriminator_arch.")
    meta_info = Path(meta_info).resolve()
    if not meta_info.is_file():
        raise FileNotFoundError(f"meta_info file {meta_info} does not exist; it lists the "
                                "training images relative to dataroot_gt, one per line.")
    n_images = sum(1 for line in meta_info.read_text().splitlines() if line.strip())
    if n_images * dataset_enlarge_ratio < batch_size:
        raise ValueError(f"{meta_info} lists {n_images} images, fewer than one batch of "
                         f"{batch_size}; add images or raise dataset_enlarge_ratio.")
    deg = dict(degradation) if degradation is not None else degrade.degradation_options()
    if l1_gt_usm is None:
        l1_gt_usm = gan
    deg["l1_gt_usm"] = bool(l1_gt_usm)
    deg = degrade.degradation_options(**deg)  # validates every value

    src = resolve_sources(gan=gan, generator_init=generator_init,
                          discriminator_init=discriminator_init,
                          perceptual_weight=perceptual_weight if gan else 0.0,
                          net_d_init_iters=net_d_init_iters, download=download)
    dev = torch_device(device)
    if autocast:
        cpu.resolve_precision(autocast, dev)  # warns where the CPU only emulates bf16
    root = Path(experiments_root).resolve()

    dataset: dict[str, Any] = {
        "name": name, "type": "RealESRGANDataset", "phase": "train", "scale": 4,
        "dataroot_gt": str(Path(dataroot_gt).resolve()), "meta_info": str(meta_info),
        "io_backend": {"type": "disk"},
        **{k: deg[k] for k in degrade.KERNEL_KEYS},
        "gt_size": gt_size, "use_hflip": use_hflip, "use_rot": use_rot,
        "use_shuffle": True, "num_worker_per_gpu": num_workers, "batch_size_per_gpu": batch_size,
        "dataset_enlarge_ratio": dataset_enlarge_ratio, "prefetch_mode": None,
    }
    train_opt: dict[str, Any] = {
        "ema_decay": ema_decay,
        "optim_g": {"type": "Adam", "lr": lr_g, "weight_decay": 0, "betas": list(betas)},
        "scheduler": {"type": "MultiStepLR", "milestones": list(lr_milestones), "gamma": 0.5},
        "total_iter": total_iter,
        "warmup_iter": -1,
        "pixel_opt": {"type": "L1Loss", "loss_weight": pixel_weight, "reduction": "mean"},
    }
    if gan:
        train_opt["optim_d"] = {"type": "Adam", "lr": lr_d, "weight_decay": 0,
                                "betas": list(betas)}
        if perceptual_weight > 0:
            train_opt["perceptual_opt"] = {
                "type": "PerceptualLoss", "layer_weights": dict(PERCEPTUAL_LAYERS),
                "vgg_type": "vgg19", "use_input_norm": True, "perceptual_weight": perceptual_weight,
                "style_weight": 0, "range_norm": False, "criterion": "l1",
            }
        train_opt["gan_opt"] = {"type": "GANLoss", "gan_type": "vanilla", "real_label_val": 1.0,
                                "fake_label_val": 0.0, "loss_weight": gan_weight}
        train_opt["net_d_iters"] = 1
        train_opt["net_d_init_iters"] = net_d_init_iters

    path: dict[str, Any] = {
        "pretrain_network_g": src.generator.path if src.generator else None,
        "param_key_g": "params_ema", "strict_load_g": True,
        "resume_state": None,
        "experiments_root": str(root), "models": str(root / "models"),
        "training_states": str(root / "training_states"), "log": str(root),
        "visualization": str(root / "visualization"), "tb_logger": str(root / "tb_logger"),
        "vgg19": src.vgg19.path if src.vgg19 else None,
    }
    opt: dict[str, Any] = {
        "name": name, "model_type": MODEL_TYPE, "scale": 4,
        "num_gpu": 1 if dev == "cuda" else 0, "manual_seed": seed, "is_train": True,
        "dist": False, "launcher": "none", "rank": 0, "world_size": 1, "auto_resume": True,
        "root_path": str(root),
        **{k: deg[k] for k in degrade.PIPELINE_KEYS},
        "gt_size": gt_size, "queue_size": queue_size,
        "datasets": {"train": dataset},
        "network_g": network_g,
        "path": path,
        "train": train_opt,
        "logger": {"print_freq": print_freq, "save_checkpoint_freq": save_checkpoint_freq,
                   "use_tb_logger": use_tb_logger, "wandb": {"project": None, "resume_id": None}},
        "dist_params": {"backend": None},
        "cxrsr": {
            "variant": variant, "degradation": mode, "loss": loss, "autocast": autocast,
            "batch_size": batch_size, "device": dev, "n_images": n_images,
            "meta_info_sha256": sources.sha256_file(meta_info),
            "sources": src.to_dict(),
        },
    }
    if gan:
        opt["network_d"] = network_d
        path.update(pretrain_network_d=src.discriminator.path if src.discriminator else None,
                    param_key_d="params", strict_load_d=True)
    return opt


_MACHINE_KEYS = ("path", "logger", "launcher", "dist_params", "num_gpu", "dist", "rank",
                 "world_size", "root_path", "auto_resume")


def options_digest(opt: Mapping[str, Any]) -> str:
    """SHA-256 of the training recipe: the options without paths, logging and process layout.

    Two runs with the same digest train the same thing (same data list, networks, losses,
    degradation, schedule, seed), wherever their files are and however many processes run.
    """
    recipe = {k: copy.deepcopy(v) for k, v in opt.items() if k not in _MACHINE_KEYS}
    train_set = recipe.get("datasets", {}).get("train", {})
    for key in ("dataroot_gt", "meta_info", "num_worker_per_gpu", "batch_size_per_gpu"):
        train_set.pop(key, None)
    for info in recipe.get("cxrsr", {}).get("sources", {}).values():
        if isinstance(info, dict):
            info.pop("path", None)
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


def distributed_options(opt: Mapping[str, Any], *, nproc: int,
                        backend: str | None = None) -> dict[str, Any]:
    """Options for ``nproc`` processes (one per GPU, or CPU processes) keeping the global batch.

    ``backend`` defaults to NCCL on GPUs and gloo on CPU.
    """
    if nproc < 1:
        raise ValueError(f"nproc must be at least 1, got {nproc}.")
    out = copy.deepcopy(dict(opt))
    batch = out["cxrsr"]["batch_size"]
    if batch % nproc:
        good = [n for n in range(1, batch + 1) if batch % n == 0]
        raise ValueError(f"The global batch {batch} does not split over {nproc} processes; use "
                         f"nproc in {good} or change batch_size.")
    per_proc = batch // nproc
    if out["queue_size"] % per_proc:
        raise ValueError(f"queue_size {out['queue_size']} must be divisible by the per-process "
                         f"batch {per_proc}.")
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
    ``python -m torch.distributed.run --standalone --nproc_per_node N -m cxrsr_utils.train
    --opt <opt_path> ...`` (``torchrun`` itself, without relying on it being on PATH).
    """
    dist_opt = distributed_options(opt, nproc=nproc, backend=backend)
    write_options(dist_opt, opt_path)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", "-m", "cxrsr_utils.train", "--opt", str(opt_path),
           "--generator-path", str(generator_path), "--model-card", str(model_card_path)]
    if params_hash:
        cmd += ["--params-hash", params_hash]
    if data_manifest_hash:
        cmd += ["--data-manifest-hash", data_manifest_hash]
    return cmd, dist_opt


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _vgg_weights(path: str | None) -> Iterator[None]:
    """Point basicsr's VGGFeatureExtractor at our resolved VGG19 file while losses are built.

    basicsr reads the module constant VGG_PRETRAIN_PATH (relative to the working folder)
    and otherwise downloads; this is its one configuration point.
    """
    old = vgg_arch.VGG_PRETRAIN_PATH
    if path:
        vgg_arch.VGG_PRETRAIN_PATH = path
    try:
        with warnings.catch_warnings():
            # basicsr builds VGG with torchvision's deprecated ``pretrained=`` argument.
            warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
            yield
    finally:
        vgg_arch.VGG_PRETRAIN_PATH = old


class CxrRealESRGANModel(RealESRGANModel):
    """realesrgan's RealESRGANModel, device-agnostic, with our degradation and variants.

    - builds DiffJPEG/USMSharp and the training-pair pool on ``self.device`` (CPU or GPU);
    - ``feed_data`` degrades with :func:`cxrsr_utils.degrade.degrade_batch` (realesrgan's
      two-stage pipeline, or bicubic x4 for the matched variants), then crops, pools and
      re-sharpens exactly as realesrgan;
    - ``cxrsr.loss == "l1"`` trains the generator with the pixel loss only (no discriminator);
    - optional bf16 autocast around the optimisation step;
    - DDP on CPU (gloo), atomic training states that also carry the RNG states.
    """

    def __init__(self, opt: dict[str, Any]) -> None:
        # RealESRGANModel.__init__ only adds .cuda() copies of these two modules and the pool
        # size, so run the class above it and make the same members on our device.
        SRGANModel.__init__(self, opt)
        self.jpeger = DiffJPEG(differentiable=False).to(self.device)
        self.usm_sharpener = USMSharp().to(self.device)
        self.queue_size = opt.get("queue_size", 180)

    @property
    def uses_gan(self) -> bool:
        return self.opt["cxrsr"]["loss"] == "gan"

    def init_training_settings(self) -> None:
        if self.opt["train"].get("perceptual_opt") and not self.opt["path"].get("vgg19"):
            raise sources.SourceError(
                "The perceptual loss needs VGG19 weights but options path.vgg19 is empty; build "
                "the options with build_options() (it resolves them) or set perceptual_weight=0.")
        with _vgg_weights(self.opt["path"].get("vgg19")):
            if self.uses_gan:
                super().init_training_settings()
            else:
                SRModel.init_training_settings(self)

    def setup_optimizers(self) -> None:
        if self.uses_gan:
            super().setup_optimizers()
        else:
            SRModel.setup_optimizers(self)  # SRGANModel's would also want an optim_d

    def model_to_device(self, net: torch.nn.Module) -> torch.nn.Module:
        if self.opt["dist"] and self.device.type == "cpu":
            # basicsr passes device_ids=[torch.cuda.current_device()], which CPU DDP rejects.
            return DistributedDataParallel(
                net.to(self.device),
                find_unused_parameters=self.opt.get("find_unused_parameters", False))
        return super().model_to_device(net)

    @torch.no_grad()
    def _dequeue_and_enqueue(self) -> None:
        if not hasattr(self, "queue_lr"):
            # realesrgan makes the pool with .cuda(); make it here on our device first.
            b, c, h, w = self.lq.size()
            if self.queue_size % b:
                raise ValueError(f"queue_size {self.queue_size} is not divisible by the batch {b}.")
            self.queue_lr = torch.zeros(self.queue_size, c, h, w, device=self.device)
            _, c, h, w = self.gt.size()
            self.queue_gt = torch.zeros(self.queue_size, c, h, w, device=self.device)
            self.queue_ptr = 0
        super()._dequeue_and_enqueue()

    @torch.no_grad()
    def feed_data(self, data: dict[str, Any]) -> None:
        if not self.is_train:
            super().feed_data(data)
            return
        self.gt = data["gt"].to(self.device)
        result = degrade.degrade_batch(
            self.gt,
            kernel1=data["kernel1"].to(self.device),
            kernel2=data["kernel2"].to(self.device),
            sinc_kernel=data["sinc_kernel"].to(self.device),
            options=self.opt, jpeger=self.jpeger, usm_sharpener=self.usm_sharpener,
            mode=self.opt["cxrsr"]["degradation"], scale=self.opt["scale"])
        # realesrgan crops [gt, gt_usm] here, but re-sharpens the crop after the pool anyway.
        self.gt, self.lq = paired_random_crop([self.gt], result.lr, self.opt["gt_size"],
                                              self.opt["scale"])
        self._dequeue_and_enqueue()
        self.gt_usm = self.usm_sharpener(self.gt)
        self.lq = self.lq.contiguous()

    def optimize_parameters(self, current_iter: int) -> None:
        bf16 = self.opt["cxrsr"].get("autocast") == "bf16"
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=bf16):
            if self.uses_gan:
                super().optimize_parameters(current_iter)
            else:
                self._optimize_pixel_only()

    def _optimize_pixel_only(self) -> None:
        """SRModel's step, but against gt_usm when l1_gt_usm (realesrnet's convention)."""
        target = self.gt_usm if self.opt["l1_gt_usm"] else self.gt
        self.optimizer_g.zero_grad()
        self.output = self.net_g(self.lq)
        l_g_pix = self.cri_pix(self.output, target)
        l_g_pix.backward()
        self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(OrderedDict(l_g_pix=l_g_pix))
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def save(self, epoch: int, current_iter: int) -> None:
        if self.uses_gan:
            super().save(epoch, current_iter)
        else:
            SRModel.save(self, epoch, current_iter)

    @master_only
    def save_network(self, net: Any, net_label: str, current_iter: int,
                     param_key: str | list[str] = "params") -> None:
        # basicsr writes straight to the final path and, after three failed tries, logs "Just
        # ignore it" and returns: a full disk left a torn net_g_N.pth behind a normal return.
        # Write through a temporary file that must load back, and raise on failure.
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        checkpoints.save(checkpoints.network_dict(nets, keys),
                         checkpoints.network_file(self.opt, net_label, current_iter))

    @master_only
    def save_training_state(self, epoch: int, current_iter: int) -> None:
        # basicsr's state, written atomically (a crash never leaves a truncated newest state),
        # plus what makes a resumed run continue exactly: the RNG states, the position in the
        # epoch (``loop_state``, set by the training loop) and realesrgan's training-pair pool.
        if current_iter == -1:
            return
        state = {
            "epoch": epoch, "iter": current_iter,
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "rng": rng_state(),
            "loop": dict(getattr(self, "loop_state", {})),
            "pool": self._pool_state(),
        }
        checkpoints.save(state, Path(self.opt["path"]["training_states"]) / f"{current_iter}.state")

    def _pool_state(self) -> dict[str, Any] | None:
        """The pair pool as uint8: its LR are 8-bit quantized and its HR come from 8-bit
        files, so the bytes hold it exactly at a quarter of the float size."""
        if not hasattr(self, "queue_lr"):
            return None
        return {"lr": _to_bytes(self.queue_lr), "gt": _to_bytes(self.queue_gt),
                "ptr": int(self.queue_ptr)}

    def restore_pool(self, pool: Mapping[str, Any] | None) -> None:
        """Put back a pool saved by :meth:`save_training_state`."""
        if pool is None:
            return
        self.queue_lr = pool["lr"].to(self.device, torch.float32) / 255.0
        self.queue_gt = pool["gt"].to(self.device, torch.float32) / 255.0
        self.queue_ptr = int(pool["ptr"])


def _to_bytes(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp((x * 255.0).round(), 0, 255).to(torch.uint8).cpu()


if MODEL_TYPE not in MODEL_REGISTRY:
    MODEL_REGISTRY.register(CxrRealESRGANModel)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainResult:
    """What a call of :func:`train` did and wrote."""

    completed: bool
    iterations: int
    total_iter: int
    resumed_from: int | None
    generator_path: str | None
    model_card_path: str | None
    loss_csv: str
    experiments_root: str
    options_sha256: str
    sources: dict[str, Any]
    seconds: float
    seconds_per_iter: float | None
    peak_rss_mb: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sources_table(results: Mapping[str, TrainResult]) -> pd.DataFrame:
    """One row per variant: iterations and where the generator, discriminator and VGG19
    came from (a source name, or the note saying what replaced it)."""
    rows = []
    for variant, r in results.items():
        src, notes = r.sources, r.sources.get("notes", {})
        rows.append({
            "variant": variant,
            "iterations": r.iterations,
            "generator init": (src.get("generator") or {}).get("source", "scratch"),
            "discriminator init": (src.get("discriminator") or {}).get("source")
            or notes.get("discriminator", "none"),
            "VGG19": (src.get("vgg19") or {}).get("source") or notes.get("vgg19", "none"),
        })
    return pd.DataFrame(rows)


def _init_distributed(opt: dict[str, Any]) -> bool:
    """Join the process group when launched by torchrun; True when this call created it."""
    import torch.distributed as dist

    created = False
    if opt.get("launcher", "none") == "none":
        opt["dist"] = False
    else:
        if opt["launcher"] != "pytorch":
            raise ValueError(f"Unsupported launcher {opt['launcher']!r}; use torchrun (pytorch).")
        if "RANK" not in os.environ:
            raise RuntimeError("These options are for several processes (launcher: pytorch); run "
                               "them with the command from torchrun_command().")
        if not dist.is_initialized():
            cuda = opt["num_gpu"] > 0
            backend = (opt.get("dist_params") or {}).get("backend") or ("nccl" if cuda else "gloo")
            if cuda:
                # basicsr uses RANK % device_count; LOCAL_RANK is right on several nodes too.
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
            dist.init_process_group(backend=backend)
            created = True
        opt["dist"] = True
    opt["rank"], opt["world_size"] = get_dist_info()
    return created


class _ResumableSampler(EnlargedSampler):
    """basicsr's EnlargedSampler that can skip the samples an interrupted epoch already used."""

    skip = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        skip, self.skip = self.skip, 0
        return iter(indices[skip:])


def _derived_seed(seed: int, rank: int, start_iter: int) -> int:
    if start_iter == 0:
        return seed + rank  # basicsr's convention for a fresh run
    digest = hashlib.sha256(f"{seed}/{rank}/{start_iter}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _load_resume_state(opt: dict[str, Any], logger: logging.Logger) -> dict[str, Any] | None:
    """The newest checkpoint whose files all load (see :func:`checkpoints.newest_loadable`),
    with basicsr's resume paths set in ``opt``; None for a fresh start."""
    found = checkpoints.newest_loadable(opt, logger)
    if found is None:
        return None
    path, state = found
    opt["path"]["resume_state"] = str(path)
    out = stdio.StringIO()
    with contextlib.redirect_stdout(out):  # check_resume print()s what it changes
        check_resume(opt, state["iter"])
    for line in out.getvalue().splitlines():
        logger.info(line)
    return state


@contextlib.contextmanager
def _basicsr_logging(log_file: Path, rank: int) -> Iterator[logging.Logger]:
    """basicsr's logger, with everything in ``log_file`` and only warnings on the console."""
    logger = get_root_logger()  # creates the 'basicsr' logger with a console handler once
    for handler in logger.handlers:
        if type(handler) is logging.StreamHandler:
            handler.setLevel(logging.WARNING)
    handler: logging.Handler | None = None
    if rank == 0:
        logger.setLevel(logging.INFO)
        handler = logging.FileHandler(log_file, "a")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s"))
        logger.addHandler(handler)
    try:
        yield logger
    finally:
        if handler is not None:
            logger.removeHandler(handler)
            handler.close()


class _LossCSV:
    """The per-iteration loss log; rows after the resumed checkpoint are dropped (redone)."""

    def __init__(self, path: Path, columns: Sequence[str], resume_iter: int) -> None:
        self.path, self.columns = path, list(columns)
        self.elapsed0 = 0.0
        kept: list[dict[str, str]] = []
        if path.is_file() and resume_iter > 0:
            with open(path, newline="") as f:
                kept = [r for r in csv.DictReader(f) if int(r["iter"]) <= resume_iter]
            if kept and kept[-1].get("elapsed_s"):
                self.elapsed0 = float(kept[-1]["elapsed_s"])
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, self.columns)
            writer.writeheader()
            writer.writerows({k: r.get(k, "") for k in self.columns} for r in kept)
        self._file = open(path, "a", newline="")  # closed in close()
        self._writer = csv.DictWriter(self._file, self.columns, extrasaction="ignore")

    def write(self, row: Mapping[str, Any]) -> None:
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _card_matches(card_path: Path, generator_path: Path, identity: Mapping[str, Any]) -> bool:
    card = stamps.done(card_path, identity, generator_path)
    return (card is not None and card.get("iterations") == card.get("total_iter")
            and card.get("generator", {}).get("sha256") == sources.sha256_file(generator_path))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def train(
    opt: Mapping[str, Any],
    *,
    generator_path: str | os.PathLike[str],
    model_card_path: str | os.PathLike[str],
    params_hash: str | None = None,
    data_manifest_hash: str | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Run (or resume, or recognise as done) the training described by ``opt``.

    Resumes from the newest checkpoint in ``opt.path.experiments_root`` whose every file
    loads (a torn or missing file makes it fall back to an older one) and stops at
    ``train.total_iter``. A checkpoint holds basicsr's networks (``net_g`` with its EMA,
    ``net_d``), optimizer and scheduler states, plus the position in the epoch, the RNG
    states and the training-pair pool, so that in one process with ``num_workers=0`` a
    resumed run ends with exactly the weights of an uninterrupted one (with several
    processes or data-loader workers it continues with fresh seeds instead). Checkpoints
    are written every ``save_checkpoint_freq`` iterations and at the last one, each file
    through a temporary file that must load back before it is renamed into place (a failed
    write raises :class:`~cxrsr_utils.checkpoints.CheckpointError`); only then is the
    previous checkpoint deleted, so only the newest is kept, and all are deleted once the
    EMA generator (``{"params_ema": ...}``) and the model card are written (each
    atomically). A run whose card and generator already match these options and hashes is
    recognised as done and not trained again; checkpoints of a different recipe raise
    RuntimeError instead of being resumed.
    ``stop_after`` stops after that iteration without writing outputs, as an interruption
    would. Writes ``loss_log.csv``, ``train.log`` and TensorBoard events (``tb_logger/``)
    under the experiments folder. Several processes: see :func:`torchrun_command`.
    """
    t0 = time.time()
    opt = copy.deepcopy(dict(opt))
    created_group = _init_distributed(opt)
    try:
        return _train(opt, Path(generator_path), Path(model_card_path), params_hash,
                      data_manifest_hash, stop_after, t0)
    finally:
        if created_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def _train(opt: dict[str, Any], generator_path: Path, card_path: Path, params_hash: str | None,
           data_hash: str | None, stop_after: int | None, t0: float) -> TrainResult:
    rank, world = opt["rank"], opt["world_size"]
    root = Path(opt["path"]["experiments_root"])
    total = int(opt["train"]["total_iter"])
    digest = options_digest(opt)
    identity = {"options_sha256": digest, "params_sha256": params_hash,
                "data_manifest_sha256": data_hash}
    csv_path = root / LOSS_CSV

    def result(completed: bool, it: int, resumed: int | None, n_iters: int,
               train_seconds: float) -> TrainResult:
        return TrainResult(
            completed=completed, iterations=it, total_iter=total, resumed_from=resumed,
            generator_path=str(generator_path) if completed else None,
            model_card_path=str(card_path) if completed else None, loss_csv=str(csv_path),
            experiments_root=str(root), options_sha256=digest,
            sources=opt["cxrsr"]["sources"], seconds=time.time() - t0,
            seconds_per_iter=train_seconds / n_iters if n_iters else None,
            peak_rss_mb=_peak_rss_mb())

    if _card_matches(card_path, generator_path, identity):
        return result(True, total, total, 0, 0.0)
    if opt["cxrsr"]["device"] == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("These options were built for a GPU but torch sees none; rebuild them "
                           "with device='cpu' or 'auto'.")
    for key in ("experiments_root", "models", "training_states", "tb_logger"):
        if rank == 0:
            Path(opt["path"][key]).mkdir(parents=True, exist_ok=True)
    _barrier(opt)
    _check_identity(root / "run_identity.json", identity, bool(checkpoints.iterations(opt)), rank)
    _barrier(opt)

    with _basicsr_logging(root / "train.log", rank) as logger:
        state = _load_resume_state(opt, logger)
        start_iter = int(state["iter"]) if state else 0
        epoch = int(state["epoch"]) if state else 0
        if start_iter == 0 and rank == 0:
            # A fresh start: events of an earlier, finished run would mix into the curves.
            shutil.rmtree(opt["path"]["tb_logger"], ignore_errors=True)
        set_random_seed(_derived_seed(opt["manual_seed"], rank, start_iter))

        train_set = build_dataset(opt["datasets"]["train"])
        dataset_opt = opt["datasets"]["train"]
        sampler = _ResumableSampler(train_set, world, rank, dataset_opt["dataset_enlarge_ratio"])
        loader = build_dataloader(train_set, dataset_opt, num_gpu=opt["num_gpu"],
                                  dist=opt["dist"], sampler=sampler, seed=opt["manual_seed"])
        if len(loader) == 0:
            raise ValueError(f"{len(train_set)} images give no full batch of "
                             f"{dataset_opt['batch_size_per_gpu']} per process over {world} "
                             "processes; add images or raise dataset_enlarge_ratio.")
        model = build_model(opt)
        epoch_batches = 0  # batches of ``epoch`` already trained
        exact = world == 1  # one process saves one set of RNG states and one pool
        if state:
            model.resume_training(state)
            epoch_batches = int(state.get("loop", {}).get("epoch_batches", 0))
            if exact:
                model.restore_pool(state.get("pool"))
            logger.info(f"Resuming training from epoch {epoch}, iteration {start_iter}.")
        pending_rng = state.get("rng") if state and exact else None
        if epoch_batches >= len(loader):
            epoch, epoch_batches = epoch + 1, 0
        gan = model.uses_gan
        columns = list(CSV_BASE_COLUMNS) + list(GAN_LOG_KEYS if gan else L1_LOG_KEYS)
        tb_logger = (_tensorboard_writer(opt["path"]["tb_logger"])
                     if opt["logger"]["use_tb_logger"] and rank == 0 else None)
        msg_logger = MessageLogger(opt, start_iter, tb_logger)
        loss_csv = _LossCSV(csv_path, columns, start_iter) if rank == 0 else None
        it, n_iters, train_seconds = start_iter, 0, 0.0
        stop = total if stop_after is None else min(total, stop_after)
        per_batch = dataset_opt["batch_size_per_gpu"]
        try:
            while it < stop:
                sampler.set_epoch(epoch)
                sampler.skip = epoch_batches * per_batch
                batches = iter(loader)  # draws from torch's RNG, so restore the states after
                if pending_rng is not None:
                    set_rng_state(pending_rng)
                    pending_rng = None
                tic = time.perf_counter()
                for batch in batches:
                    data_time = time.perf_counter() - tic
                    it += 1
                    epoch_batches += 1
                    _update_learning_rate(model, it, opt["train"].get("warmup_iter", -1))
                    model.feed_data(batch)
                    model.optimize_parameters(it)
                    iter_time = time.perf_counter() - tic
                    n_iters += 1
                    train_seconds += iter_time
                    logs = model.get_current_log()
                    lr_g = model.optimizers[0].param_groups[0]["lr"]
                    lr_d = model.optimizers[1].param_groups[0]["lr"] if gan else None
                    if loss_csv is not None:
                        loss_csv.write({"iter": it, "epoch": epoch, "lr_g": lr_g, "lr_d": lr_d,
                                        "time_s": iter_time, "data_time_s": data_time,
                                        "elapsed_s": loss_csv.elapsed0 + train_seconds, **logs})
                    if it % opt["logger"]["print_freq"] == 0:
                        msg_logger({"epoch": epoch, "iter": it, "lrs": [lr_g], "time": iter_time,
                                    "data_time": data_time, **logs})
                    if it % opt["logger"]["save_checkpoint_freq"] == 0 or it == total:
                        model.loop_state = {"epoch_batches": epoch_batches}
                        # Every file is written through a temporary file that must load
                        # back (CheckpointError otherwise), so the older one can go after.
                        model.save(epoch, it)
                        if rank == 0:
                            checkpoints.prune(opt, keep=it)
                    if it >= stop:
                        break
                    tic = time.perf_counter()
                else:
                    epoch, epoch_batches = epoch + 1, 0
        finally:
            if loss_csv is not None:
                loss_csv.close()
            if tb_logger is not None:
                tb_logger.close()
        if it < total:
            logger.info(f"Stopped at iteration {it} of {total} (stop_after={stop_after}).")
            return result(False, it, start_iter or None, n_iters, train_seconds)
        if rank == 0:
            _export(model, opt, generator_path, card_path, identity, start_iter, logger)
            # The card and generator now mark the run as done; checkpoints are dead weight.
            checkpoints.prune(opt, keep=None)
            (root / "run_identity.json").unlink(missing_ok=True)
        _barrier(opt)
        logger.info(f"Training finished at iteration {it}.")
    return result(True, it, start_iter or None, n_iters, train_seconds)


def _tensorboard_writer(log_dir: str) -> Any:
    """basicsr's TensorBoard writer, without loading TensorFlow just to write event files.

    When TensorFlow is installed, tensorboard imports all of it (seconds and about a GB on a
    small machine) unless the module ``tensorboard.compat.notf`` exists, which is how its
    own TensorFlow-free build selects its stub; register that marker unless TF is loaded.
    """
    if "tensorflow" not in sys.modules:
        name = "tensorboard.compat.notf"
        sys.modules.setdefault(name, types.ModuleType(name))
    return init_tb_logger(log_dir=log_dir)


def _update_learning_rate(model: CxrRealESRGANModel, it: int, warmup_iter: int) -> None:
    with warnings.catch_warnings():
        # During the discriminator warm-up (net_d_init_iters) the generator's optimizer rightly
        # does not step yet; torch warns about that ordering when the scheduler steps.
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
        model.update_learning_rate(it, warmup_iter=warmup_iter)


def _barrier(opt: Mapping[str, Any]) -> None:
    if opt["dist"]:
        import torch.distributed as dist

        dist.barrier()


def _check_identity(path: Path, identity: Mapping[str, Any], has_checkpoints: bool,
                    rank: int) -> None:
    """Refuse to resume checkpoints of a different recipe, data or params."""
    if has_checkpoints and path.is_file():
        stored = json.loads(path.read_text())
        if stored != dict(identity):
            diff = [k for k in identity if stored.get(k) != identity[k]]
            raise RuntimeError(
                f"{path.parent} holds checkpoints of a different run ({', '.join(diff)} differ). "
                "Delete that folder to start over, or give this run another experiments_root.")
    elif rank == 0:
        write_text(path, json.dumps(dict(identity), indent=1))


def _export(model: CxrRealESRGANModel, opt: Mapping[str, Any], generator_path: Path,
            card_path: Path, identity: Mapping[str, Any], start_iter: int,
            logger: logging.Logger) -> None:
    """Save the EMA generator (params_ema) and the model card, each atomically."""
    net = model.net_g_ema if getattr(model, "net_g_ema", None) is not None else (
        model.get_bare_model(model.net_g))
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    save_torch({"params_ema": state}, generator_path)
    cx = opt["cxrsr"]
    card = {
        "model": opt["name"],
        "architecture": opt["network_g"],
        "variant": cx["variant"], "degradation": cx["degradation"], "loss": cx["loss"],
        **identity,
        "iterations": int(opt["train"]["total_iter"]),
        "total_iter": int(opt["train"]["total_iter"]),
        "batch_size": cx["batch_size"], "gt_size": opt["gt_size"], "world_size": opt["world_size"],
        "device": cx["device"], "autocast": cx.get("autocast"),
        "ema_decay": opt["train"]["ema_decay"],
        "sources": cx["sources"],
        "training_data": {"n_images": cx["n_images"], "meta_info_sha256": cx["meta_info_sha256"]},
        "generator": {"path": str(generator_path), "sha256": sources.sha256_file(generator_path),
                      "param_key": "params_ema",
                      "weights": "EMA of the generator (decay ema_decay)"
                      if opt["train"]["ema_decay"] > 0 else "generator (no EMA)"},
        "resumed_from": start_iter or None,
        "software": {"torch": torch.__version__,
                     "basicsr": importlib.metadata.version("basicsr"),
                     "realesrgan": importlib.metadata.version("realesrgan"),
                     "cxrsr": importlib.metadata.version("cxrsr")},
    }
    provenance.write_json(card_path, card)
    logger.info(f"Saved the EMA generator to {generator_path} and the model card to {card_path}.")


def loss_log(source: str | os.PathLike[str]) -> pd.DataFrame:
    """The loss log of a run (its experiments folder or its CSV) as a DataFrame, one row per
    iteration: iter, epoch, lr_g, lr_d, time_s, data_time_s, elapsed_s and each loss."""
    path = Path(source)
    if path.is_dir():
        path = path / LOSS_CSV
    if not path.is_file():
        raise FileNotFoundError(f"No loss log at {path}; train first.")
    return pd.read_csv(path)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cxrsr_utils.train --opt options.yml ...``: the entry torchrun starts."""
    parser = argparse.ArgumentParser(description="Fine-tune Real-ESRGAN (cxrsr options file).")
    parser.add_argument("--opt", required=True, help="options YAML from torchrun_command()")
    parser.add_argument("--generator-path", required=True)
    parser.add_argument("--model-card", required=True)
    parser.add_argument("--params-hash")
    parser.add_argument("--data-manifest-hash")
    parser.add_argument("--stop-after", type=int)
    args = parser.parse_args(argv)
    result = train(read_options(args.opt), generator_path=args.generator_path,
                   model_card_path=args.model_card, params_hash=args.params_hash,
                   data_manifest_hash=args.data_manifest_hash, stop_after=args.stop_after)
    return 0 if result.completed or args.stop_after else 1


if __name__ == "__main__":
    sys.exit(main())


# --------------------------------------------------------------------------------------------
# The study's entry: one variant of a profile (notebook 03)
# --------------------------------------------------------------------------------------------


def profile_options(params: Any, work: StudyLayout | str | os.PathLike[str],
                    variant: str) -> dict[str, Any]:
    """basicsr options for ``variant`` from a :class:`cxrsr_utils.params.Params` profile.

    The fine-tune set is notebook 01's (``work/data/nih/finetune`` with its
    ``meta_info.txt``); the variant trains into ``work/finetune/<variant>/experiment``;
    ``finetune.epochs`` becomes iterations with :func:`iterations_for_epochs`.
    """
    ft = params.finetune
    layout = as_layout(work)
    root, meta = layout.nih_finetune, layout.meta_info
    if not meta.is_file():
        raise FileNotFoundError(f"{meta} is missing: run notebook 01 (data preparation) first.")
    total = ft.total_iter
    if total is None:
        n_images = sum(1 for line in meta.read_text().splitlines() if line.strip())
        total = iterations_for_epochs(n_images, ft.batch_size, ft.epochs)
    return build_options(
        name=f"{params.profile}_{variant}", dataroot_gt=root, meta_info=meta,
        experiments_root=layout.experiment(variant), variant=variant,
        total_iter=total, batch_size=ft.batch_size, gt_size=ft.gt_size, lr_g=ft.lr_g,
        lr_d=ft.lr_d, betas=ft.betas, pixel_weight=ft.pixel_weight,
        perceptual_weight=ft.perceptual_weight, gan_weight=ft.gan_weight,
        ema_decay=ft.ema_decay, net_d_init_iters=ft.net_d_init_iters,
        generator_init=ft.generator_init, discriminator_init=ft.discriminator_init,
        queue_size=ft.queue_size, seed=params.seed, device=params.device,
        num_workers=ft.num_workers, save_checkpoint_freq=ft.save_checkpoint_freq,
        print_freq=ft.print_freq, autocast=_autocast_for(ft.autocast, params.device),
        degradation=params.degradation.model_dump(mode="json"),
    )


def _autocast_for(requested: str | None, device: str) -> str | None:
    """``finetune.autocast`` as :func:`build_options` takes it: ``auto`` is bf16 only where
    the CPU has native bf16 (or on a GPU), else no autocast."""
    if requested != "auto":
        return requested
    return None if cpu.resolve_precision("auto", torch_device(device)) == "fp32" else "bf16"


def train_variant(
    params: Any, work: StudyLayout | str | os.PathLike[str], variant: str, *,
    data_manifest_hash: str | None,
) -> TrainResult:
    """Train (or resume, or recognise as done) one variant of the profile; see :func:`train`.

    Writes ``work/finetune/<variant>/generator.pth`` and ``model_card.json``.
    """
    layout = as_layout(work)
    return train(
        profile_options(params, layout, variant),
        generator_path=layout.generator(variant),
        model_card_path=layout.model_card(variant),
        params_hash=params.digest(),
        data_manifest_hash=data_manifest_hash,
    )
