"""The sections of basicsr's option dict, with realesrgan's values where the study has none.

:func:`cxrsr_utils.finetune.options.build_options` assembles them: the process layout, the
training set (realesrgan's ``RealESRGANDataset``), optimizers, schedule and losses, the folders
and initial weights, and logging.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cxrsr_utils.core.params import FinetuneParams
from cxrsr_utils.degradation import options as degrade_options
from cxrsr_utils.finetune.start_weights import TrainingSources

# VGG19 features before ReLU, as in realesrgan's finetune options.
PERCEPTUAL_LAYERS: dict[str, float] = {
    "conv1_2": 0.1,
    "conv2_2": 0.1,
    "conv3_4": 1.0,
    "conv4_4": 1.0,
    "conv5_4": 1.0,
}


def process_options(device: str, seed: int, root: Path) -> dict[str, Any]:
    """One process on ``device`` (for several: :mod:`cxrsr_utils.finetune.torchrun`)."""
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


def logger_options(ft: FinetuneParams, use_tb_logger: bool) -> dict[str, Any]:
    """How often to print and checkpoint; TensorBoard on or off, no wandb."""
    return {
        "print_freq": ft.print_freq,
        "save_checkpoint_freq": ft.save_checkpoint_freq,
        "use_tb_logger": use_tb_logger,
        "wandb": {"project": None, "resume_id": None},
    }


def dataset_options(
    ft: FinetuneParams,
    name: str,
    dataroot_gt: str | os.PathLike[str],
    meta_info: Path,
    deg: Mapping[str, Any],
    dataset_enlarge_ratio: int,
) -> dict[str, Any]:
    """realesrgan's RealESRGANDataset: HR crops, flips, and the blur kernels of each draw
    (``dataroot_gt`` resolved to an absolute path)."""
    return {
        "name": name,
        "type": "RealESRGANDataset",
        "phase": "train",
        "scale": 4,
        "dataroot_gt": str(Path(dataroot_gt).resolve()),
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


def train_options(ft: FinetuneParams, gan: bool, total_iter: int) -> dict[str, Any]:
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


def path_options(root: Path, src: TrainingSources, gan: bool) -> dict[str, Any]:
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
