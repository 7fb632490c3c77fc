"""The images of an evaluation pair: the HR and its two LR forms.

* HR: for NIH a centre crop of the original's native pixels (:func:`centre_crop`, never a
  resample); for Kermany the whole image resampled to a square (:func:`square_hr`).
* ``lr``: bicubic x4 of the HR (:func:`cxrsr_utils.images.radiographs.resize`), the paper's LR.
* ``lr_degraded``: the paper's two-stage degradation of the same HR
  (:func:`cxrsr_utils.degradation.pipeline.degrade`), drawn once per image from a seed derived from
  the
  study's seed, the data set and the image's name (:func:`degradation_seed`), so it is fixed.

Float images are gray 2-D arrays in [0, 1], as :meth:`Radiograph.as_float` gives them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cxrsr_utils.core.repro import rng
from cxrsr_utils.degradation import pipeline as degrade
from cxrsr_utils.images import radiographs


def centre_crop(pixels: np.ndarray, side: int) -> np.ndarray | None:
    """The ``side`` x ``side`` centre of ``pixels`` (the same pixels, not a copy of other
    values), or None when the image is smaller than that on either side."""
    h, w = pixels.shape[:2]
    if h < side or w < side:
        return None
    top, left = (h - side) // 2, (w - side) // 2
    return pixels[top : top + side, left : left + side]


def square_hr(image: np.ndarray, side: int) -> np.ndarray:
    """The whole image resampled (bicubic) to ``side`` x ``side``, clipped to [0, 1]."""
    return np.clip(radiographs.resize(image, (side, side)), 0.0, 1.0)


def bicubic_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The paper's LR: antialiased bicubic x``scale`` of the HR, clipped to [0, 1]."""
    h, w = hr.shape
    return np.clip(radiographs.resize(hr, (w // scale, h // scale)), 0.0, 1.0)


def degradation_seed(seed: int, dataset: str, image: str) -> int:
    """The seed of one image's degraded LR: from the study's ``seed``, the data set (``nih``,
    ``kermany``) and the image's name relative to its pair folder (``x.png``,
    ``NORMAL/x.png``)."""
    return int(rng(seed, "eval-degradation", dataset, image).integers(2**31))


def degraded_lr(hr: np.ndarray, seed: int, options: Mapping[str, Any], scale: int) -> np.ndarray:
    """The paper's two-stage degradation of one gray HR, as a gray LR (channel mean)."""
    result = degrade.degrade(hr, seed=seed, options=options, scale=scale)
    return np.clip(degrade.batch_to_gray(result.lr)[0], 0.0, 1.0)


def pair_forms(
    hr_pixels: np.ndarray,
    max_value: int,
    scale: int,
    degradation: Mapping[str, Any] | None = None,
    seed: int | None = None,
) -> dict[str, np.ndarray]:
    """A pair's images as integer pixels by role (:data:`cxrsr_utils.core.layout.PAIR_ROLES`): the
    HR as given, its bicubic LR, and with ``degradation`` options its degraded LR drawn from
    ``seed`` (see :func:`degradation_seed`). The LR forms are made from the HR's integer
    pixels, so they can be remade from its file."""
    hr = hr_pixels.astype(np.float32) / float(max_value)
    forms = {"hr": hr_pixels, "lr": radiographs.to_pixels(bicubic_lr(hr, scale), max_value)}
    if degradation is not None:
        if seed is None:
            raise ValueError("A degraded LR needs its seed (degradation_seed).")
        lr = degraded_lr(hr, seed, degradation, scale)
        forms["lr_degraded"] = radiographs.to_pixels(lr, max_value)
    return forms


def check_degradable(side: int, options: Mapping[str, Any], scale: int, name: str) -> None:
    """Refuse an HR side the two-stage degradation cannot take, naming the parameter."""
    need = degrade.min_hr_side(options, scale)
    if side < need:
        raise ValueError(
            f"{name}={side} is too small for the two-stage degradation of the 'degraded' "
            f"condition: it needs at least {need} pixels for degradation.resize_range "
            f"{list(options['resize_range'])}. Raise {name}."
        )
