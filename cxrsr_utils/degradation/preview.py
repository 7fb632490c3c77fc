"""Notebook 02's look at the degradation: its settings table, HR crops, tiles and LR fidelity.

Everything here calls :func:`cxrsr_utils.degradation.pipeline.degrade`, the code training runs, so
what the
notebook shows is what the network learns from. Each function is one step of the notebook:
:func:`degradation_table` (the profile's settings), :func:`hr_crops` (centre crops of the
fine-tune originals), :func:`stage_tiles` and :func:`draw_tiles` (the figures' images),
:func:`fidelity_table` and :func:`fidelity_summary` (how degraded the LR inputs are).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from cxrsr_utils.core.layout import StudyLayout
from cxrsr_utils.core.params_data import DegradationParams
from cxrsr_utils.degradation import pairs as pair_images
from cxrsr_utils.degradation.options import degradation_options
from cxrsr_utils.degradation.pipeline import MODES, Degraded, batch_to_gray, degrade, gray_to_batch
from cxrsr_utils.images.radiographs import read_radiograph
from cxrsr_utils.images.radiographs import resize as pil_resize
from cxrsr_utils.sr.upstream import calculate_ssim
from cxrsr_utils.stats import image_metrics as metrics

# The columns of :func:`fidelity_summary`'s statistics, per metric.
_SUMMARY_STATS = ["count", "mean", "5%", "50%", "95%"]


def _span(values: Sequence[float]) -> str:
    return f"{values[0]:g}–{values[1]:g}"


def _blur(o: Mapping[str, Any], stage: int) -> str:
    sfx = "" if stage == 1 else "2"
    kernels = ", ".join(
        f"{name} {p:g}"
        for name, p in zip(o[f"kernel_list{sfx}"], o[f"kernel_prob{sfx}"], strict=True)
    )
    when = "always" if stage == 1 else f"p {o['second_blur_prob']:g}"
    return (
        f"{when}; kernels {kernels}; sinc p {o[f'sinc_prob{sfx}']:g}; "
        f"sigma {_span(o[f'blur_sigma{sfx}'])}, generalized beta {_span(o[f'betag_range{sfx}'])}, "
        f"plateau beta {_span(o[f'betap_range{sfx}'])}"
    )


def _resize(o: Mapping[str, Any], sfx: str) -> str:
    up, down, keep = o[f"resize_prob{sfx}"]
    low, high = o[f"resize_range{sfx}"]
    return f"{up:g} / {down:g} / {keep:g} over [{low:g}, {high:g}]"


def _noise(o: Mapping[str, Any], sfx: str) -> str:
    return (
        f"Gaussian p {o[f'gaussian_noise_prob{sfx}']:g} (sigma {_span(o[f'noise_range{sfx}'])}) "
        f"else Poisson (scale {_span(o[f'poisson_scale_range{sfx}'])}); "
        f"gray noise p {o[f'gray_noise_prob{sfx}']:g}"
    )


def degradation_table(degradation: DegradationParams | Mapping[str, Any]) -> pd.DataFrame:
    """The two-stage degradation's settings, one row per stage (notebook 02's first table).

    ``degradation`` is a profile's ``params.degradation`` or a dict of
    :func:`cxrsr_utils.degradation.options.degradation_options`; it is checked as training checks
    it. Columns: stage, blur, resize (up / down / keep), noise, JPEG.
    """
    given = degradation.model_dump() if isinstance(degradation, DegradationParams) else degradation
    o = degradation_options(**given)
    final = f"final sinc filter p {o['final_sinc_prob']:g}, with the resize, before or after JPEG"
    rows = [
        (1, _blur(o, 1), _resize(o, ""), _noise(o, ""), f"quality {_span(o['jpeg_range'])}"),
        (
            2,
            _blur(o, 2),
            _resize(o, "2"),
            _noise(o, "2"),
            f"quality {_span(o['jpeg_range2'])}; {final}",
        ),
    ]
    columns = ["stage", "blur", "resize (up / down / keep)", "noise", "JPEG"]
    return pd.DataFrame(rows, columns=columns)


def centre_crop(image: np.ndarray, size: int, multiple: int = 1) -> np.ndarray:
    """The central square of side ``min(h, w, size)``, cut down to a multiple of ``multiple``
    (the scale, so the degraded LR has whole pixels)."""
    side = min(*image.shape[:2], size) // multiple * multiple
    crop = pair_images.centre_crop(image, side) if side >= 1 else None
    if crop is None:
        raise ValueError(f"No {multiple}-multiple square fits an image of shape {image.shape}.")
    return crop


def hr_crops(layout: StudyLayout, *, n: int, size: int, multiple: int) -> dict[str, np.ndarray]:
    """Centre crops (:func:`centre_crop`) of the first ``n`` NIH fine-tune originals.

    The originals are the manifest's ``role == "original"`` rows (notebook 01), in its order;
    the dict's keys are their paths relative to ``layout.data``, its values gray floats.
    """
    manifest = pd.read_csv(layout.data_manifest)
    originals = manifest[manifest.role == "original"].path.tolist()
    return {
        path: centre_crop(read_radiograph(layout.data / path).as_float(), size, multiple)
        for path in originals[:n]
    }


def stage_tiles(result: Degraded) -> list[tuple[str, np.ndarray]]:
    """Each kept stage of ``result`` (``degrade(..., return_stages=True)``), as a gray tile."""
    return [(name, batch_to_gray(t)[0]) for name, t in result.stages.items()]


def scalar_decisions(decisions: Mapping[str, Any], ndigits: int = 3) -> dict[str, Any]:
    """The per-batch decisions without the per-image lists, floats rounded to ``ndigits``."""
    return {
        k: round(v, ndigits) if isinstance(v, float) else v
        for k, v in decisions.items()
        if not isinstance(v, list)
    }


def draw_tiles(
    hr: np.ndarray, *, seed: int, n: int, options: Mapping[str, Any] | None = None
) -> list[tuple[str, np.ndarray]]:
    """The LR of ``n`` random degradations of ``hr`` (seeds ``seed + k``), as gray tiles titled
    with each draw's first resize and noise."""
    draws = [degrade(hr, seed=seed + k, options=options) for k in range(n)]
    return [
        (f"seed +{k}: {d.decisions['resize1']}/{d.decisions['noise1']}", batch_to_gray(d.lr)[0])
        for k, d in enumerate(draws)
    ]


def lr_fidelity(hr: torch.Tensor, lr: torch.Tensor, *, scale: int = 4) -> pd.DataFrame:
    """PSNR/SSIM of bicubic-upsampled LR against HR, one row per image, for a degradation table.

    Both are taken to gray (channel mean); the LR is upsampled with the study's bicubic
    (:func:`cxrsr_utils.images.radiographs.resize`), clipped and rounded to 8 bits as a saved image
    would be.
    PSNR is ``10 log10(1 / MSE)`` on [0, 1] with :func:`cxrsr_utils.stats.image_metrics.mse`; SSIM
    is
    basicsr's ``calculate_ssim`` (MATLAB's Gaussian-window SSIM) on the 0..255 scale. No border
    is cropped. (``metrics.psnr``'s numpy log10 and ``metrics.ssim``'s scikit-image differ from
    these in the last digits, which the committed ``02_lr_fidelity`` table holds.)
    """
    hr_g, lr_g = batch_to_gray(hr), batch_to_gray(lr)
    if hr_g.shape[0] != lr_g.shape[0]:
        raise ValueError(f"hr has {hr_g.shape[0]} images but lr has {lr_g.shape[0]}.")
    rows = []
    for i, (h_img, l_img) in enumerate(zip(hr_g, lr_g, strict=True)):
        if (l_img.shape[0] * scale, l_img.shape[1] * scale) != h_img.shape:
            raise ValueError(
                f"image {i}: LR {l_img.shape} x{scale} does not match HR {h_img.shape}."
            )
        up = pil_resize(l_img, (h_img.shape[1], h_img.shape[0]))
        up = np.clip(np.rint(up * 255.0), 0, 255) / 255.0
        err = metrics.mse(up, h_img)
        psnr = float("inf") if err == 0 else 10.0 * math.log10(1.0 / err)
        ssim = float(
            calculate_ssim(
                up[..., None] * 255.0,
                h_img[..., None].astype(np.float64) * 255.0,
                crop_border=0,
                input_order="HWC",
            )
        )
        rows.append({"image": i, "psnr_db": psnr, "ssim": ssim})
    return pd.DataFrame(rows)


def fidelity_table(
    images: Mapping[str, np.ndarray],
    *,
    draws: int,
    seed: int,
    options: Mapping[str, Any] | None = None,
    scale: int = 4,
) -> pd.DataFrame:
    """How degraded the LR inputs are: :func:`lr_fidelity` of ``draws`` degradations of each
    gray HR image, in every mode (notebook 02's table).

    Draw ``k`` of the ``i``-th image uses seed ``seed + 1000 i + k`` in both modes, so each
    row is reproducible on its own. Columns: mode, image (the mapping's key), draw, psnr, ssim.
    """
    rows = []
    for i, (name, image) in enumerate(images.items()):
        batch = gray_to_batch(image)
        for k in range(draws):
            for mode in MODES:
                lr = degrade(
                    image, seed=seed + 1000 * i + k, mode=mode, options=options, scale=scale
                ).lr
                fid = lr_fidelity(batch, lr, scale=scale)
                rows.append(
                    {
                        "mode": mode,
                        "image": name,
                        "draw": k,
                        "psnr": float(fid.psnr_db[0]),
                        "ssim": float(fid.ssim[0]),
                    }
                )
    return pd.DataFrame(rows)


def fidelity_summary(fidelity: pd.DataFrame) -> pd.DataFrame:
    """Per mode, the count, mean and 5/50/95 % percentiles of PSNR and SSIM, to 3 decimals.

    ``fidelity`` is :func:`fidelity_table`'s; columns are ``mode`` and ``"<metric> <stat>"``.
    """
    stats = fidelity.groupby("mode")[["psnr", "ssim"]].describe(percentiles=[0.05, 0.5, 0.95])
    stats = stats.loc[:, (slice(None), _SUMMARY_STATS)].round(3)
    stats.columns = [f"{m} {s}" for m, s in stats.columns]
    return stats.reset_index()
