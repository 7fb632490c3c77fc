"""The way into basicsr and realesrgan: the import shim they need, and the names the study shares.

basicsr 1.4.2 (the last release) does ``import torchvision.transforms.functional_tensor``
in ``basicsr/data/degradations.py``. torchvision 0.17 renamed that private module to
``torchvision.transforms._functional_tensor`` and later releases removed the old name, so
importing basicsr (and realesrgan, which imports basicsr) fails with ModuleNotFoundError.

This module registers the old name as an alias of the new one *before* basicsr is imported,
then re-exports the basicsr/realesrgan names the study shares (networks, degradations, metrics,
``RealESRGANer``); other modules take those names from here. The shim is applied in this one
place, the first time this module is imported. Site-packages are never edited.

Modules that need more of basicsr's internals import them from basicsr directly, after
importing this module first for the shim: the fine-tuning modules (``cxrsr_utils/finetune/``
``model.py``, ``loop.py`` and ``logs.py``: basicsr's model registry and training models, data
loaders, samplers and loggers) import it in an import block of its own (``# isort: split``,
so no sorting can move it below basicsr); the tests and benchmarks that drive basicsr
themselves import it, or a module that does, before basicsr.
"""

from __future__ import annotations

import importlib
import sys


def _alias_functional_tensor() -> None:
    """Make ``torchvision.transforms.functional_tensor`` importable again (see module doc)."""
    old = "torchvision.transforms.functional_tensor"
    if old in sys.modules:
        return
    try:
        importlib.import_module(old)
    except ModuleNotFoundError:
        sys.modules[old] = importlib.import_module("torchvision.transforms._functional_tensor")


_alias_functional_tensor()

# ruff: noqa: E402  (the alias must exist before these imports run)
from basicsr.archs.discriminator_arch import UNetDiscriminatorSN
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.data import degradations
from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim
from basicsr.utils import DiffJPEG, USMSharp
from basicsr.utils.img_process_util import filter2D
from realesrgan.archs.srvgg_arch import SRVGGNetCompact
from realesrgan.data.realesrgan_dataset import RealESRGANDataset
from realesrgan.models.realesrgan_model import RealESRGANModel
from realesrgan.utils import RealESRGANer

__all__ = [
    "DiffJPEG",
    "RRDBNet",
    "RealESRGANDataset",
    "RealESRGANModel",
    "RealESRGANer",
    "SRVGGNetCompact",
    "UNetDiscriminatorSN",
    "USMSharp",
    "calculate_psnr",
    "calculate_ssim",
    "degradations",
    "filter2D",
]
