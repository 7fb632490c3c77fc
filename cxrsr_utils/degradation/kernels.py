"""The degradation's blur kernels, drawn by realesrgan's own ``RealESRGANDataset``.

Training's data loader draws, per image, a first and a second blur kernel and a final sinc
filter (``RealESRGANDataset.__getitem__``); :func:`sample_kernels` makes the same draws without
reading images, for :func:`cxrsr_utils.degradation.pipeline.degrade`, and :func:`sinc_flags` reads
back from
the kernels which of them were sinc filters.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np
import torch

from cxrsr_utils.degradation.options import KERNEL_KEYS, KERNEL_SIZE, check_kernel_options
from cxrsr_utils.sr.upstream import RealESRGANDataset

# The kernels one image gets, as RealESRGANDataset names them (and degrade_batch takes them).
KERNEL_NAMES: tuple[str, ...] = ("kernel1", "kernel2", "sinc_kernel")


class _StubImageClient:
    """A basicsr file client that serves one small PNG, so RealESRGANDataset only makes kernels."""

    def __init__(self) -> None:
        ok, buf = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
        if not ok:  # pragma: no cover - cv2 always encodes a zero image
            raise RuntimeError("cv2 could not encode a PNG")
        self._bytes = buf.tobytes()

    def get(self, filepath: str, client_key: str = "default") -> bytes:
        return self._bytes


def kernel_dataset(options: Mapping[str, Any]) -> RealESRGANDataset:
    """A RealESRGANDataset whose ``__getitem__`` yields realesrgan's kernels for ``options``.

    It reads no files: the meta-info file is the empty ``os.devnull`` and the file client
    serves a tiny stub image, so each item costs one kernel draw (and a 400x400 pad that
    realesrgan hard-codes). Flips are off so only the kernel draws consume randomness.
    """
    check_kernel_options(options)
    opt = {
        k: (list(options[k]) if isinstance(options[k], tuple) else options[k]) for k in KERNEL_KEYS
    }
    opt.update(
        dataroot_gt="",
        meta_info=os.devnull,
        io_backend={"type": "disk"},
        use_hflip=False,
        use_rot=False,
    )
    dataset = RealESRGANDataset(opt)
    # Both are plain attributes the dataset reads in __getitem__; setting them skips the disk.
    dataset.paths = ["<kernel-sampler>"]
    dataset.file_client = _StubImageClient()
    return dataset


def sample_kernels(n: int, options: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """``n`` draws of (kernel1, kernel2, sinc_kernel) by RealESRGANDataset, stacked ``(n, 21, 21)``.

    Uses Python's ``random`` and NumPy's global generator, like the data loader does.
    """
    dataset = kernel_dataset(options)
    items = [dataset[0] for _ in range(n)]
    return {key: torch.stack([item[key] for item in items]) for key in KERNEL_NAMES}


def zero_kernels(n: int) -> dict[str, torch.Tensor]:
    """Placeholder kernels for the ``bicubic`` mode, which uses none (and draws none)."""
    return {key: torch.zeros(n, KERNEL_SIZE, KERNEL_SIZE) for key in KERNEL_NAMES}


def is_pulse(kernel: torch.Tensor) -> bool:
    """RealESRGANDataset's "no final sinc" kernel is a unit pulse at the centre."""
    c = kernel.shape[-1] // 2
    return bool(kernel[c, c] == 1 and kernel.abs().sum() == 1)


def sinc_flags(kernels: Mapping[str, torch.Tensor]) -> dict[str, list[bool]]:
    """Which of a batch's kernels were sinc filters, read back from the kernels themselves.

    realesrgan's sinc (circular low-pass) kernels always have negative lobes at 7..21 taps, its
    Gaussian-family kernels never do, and "no final sinc" is a unit pulse.
    """
    return {
        "kernel1_sinc": (kernels["kernel1"].flatten(1).amin(1) < 0).tolist(),
        "kernel2_sinc": (kernels["kernel2"].flatten(1).amin(1) < 0).tolist(),
        "final_sinc": [not is_pulse(k) for k in kernels["sinc_kernel"]],
    }
