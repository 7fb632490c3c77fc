"""Image-quality metrics against the HR ground truth, and the tables that summarise them.

Per image: :func:`psnr`, :func:`ssim`, :func:`mse` (and :func:`image_metrics`, all three at
once) on gray float images in [0, 1] (or any range given as ``data_range``), with BasicSR's
``crop_border``; :func:`lr_consistency` (does the SR image downsample back to its LR input?);
:func:`difference_map` (the |SR - HR| maps of notebook 04's figure).

PSNR and SSIM equal ``basicsr.metrics.calculate_psnr`` / ``calculate_ssim`` (what the
Real-ESRGAN literature reports) on the same pixels: PSNR to the last float bit, SSIM to about
1e-13 (``tests/test_metrics.py`` checks both on a real radiograph).

Over images, from the per-image long table (one row per data set, image and method; a
"method" is how an SR output was made: bicubic, pretrained, finetuned:<variant>, ...):
:func:`summary_table` (mean with a bootstrap CI per method and metric) and
:func:`compare_methods` (method A vs B on the same images). The statistics themselves live in
:mod:`cxrsr_utils.stats.bootstrap` and :mod:`cxrsr_utils.stats.significance`; print the tables
with :func:`cxrsr_utils.stats.rounding.round_table` ``(table, DIGITS)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from skimage.metrics import structural_similarity

from cxrsr_utils.images import radiographs
from cxrsr_utils.stats import bootstrap, significance

# Which direction is better, per metric column of the per-image table.
HIGHER_IS_BETTER: dict[str, bool] = {"psnr": True, "ssim": True, "mse": False, "lr_psnr": True}
METRICS: tuple[str, ...] = ("psnr", "ssim", "mse", "lr_psnr")
# Decimals per metric for stats.rounding.round_table: 0.01 dB, 1e-4 SSIM, 1e-6 MSE on [0, 1] images.
DIGITS: dict[str, int] = {"psnr": 2, "lr_psnr": 2, "ssim": 4, "mse": 6}


def _data_range(a: np.ndarray, b: np.ndarray, data_range: float | None) -> float:
    """``data_range`` checked, or 1.0 for float images; integer images must say theirs."""
    if data_range is None:
        if a.dtype.kind != "f" or b.dtype.kind != "f":
            raise ValueError(
                f"Integer images ({a.dtype}, {b.dtype}) need an explicit data_range (255 for "
                "8-bit, 4095 for 12-bit, ...); or pass floats in [0, 1]."
            )
        return 1.0
    if data_range <= 0:
        raise ValueError(f"data_range must be > 0, got {data_range}.")
    return float(data_range)


def _pair(
    sr: np.ndarray, hr: np.ndarray, crop_border: int, data_range: float | None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Validate, crop and cast to float64 (float32 sums lose ~1e-6 of SSIM; basicsr uses 64)."""
    sr, hr = np.asarray(sr), np.asarray(hr)
    if sr.shape != hr.shape:
        raise ValueError(f"Image shapes differ: {sr.shape} vs {hr.shape}.")
    if sr.ndim != 2:
        raise ValueError(f"Metrics take 2-D gray images, got shape {sr.shape}.")
    data_range = _data_range(sr, hr, data_range)
    if crop_border < 0 or 2 * crop_border >= min(sr.shape):
        raise ValueError(f"crop_border {crop_border} does not fit an image of shape {sr.shape}.")
    if crop_border:
        sr = sr[crop_border:-crop_border, crop_border:-crop_border]
        hr = hr[crop_border:-crop_border, crop_border:-crop_border]
    return sr.astype(np.float64), hr.astype(np.float64), float(data_range)


def mse(sr: np.ndarray, hr: np.ndarray, *, crop_border: int = 0) -> float:
    """Mean squared error in the images' own units (on [0, 1] floats: the study's MSE)."""
    a, b, _ = _pair(sr, hr, crop_border, data_range=1.0)
    return float(np.mean((a - b) ** 2))


def psnr(
    sr: np.ndarray, hr: np.ndarray, *, data_range: float | None = None, crop_border: int = 0
) -> float:
    """PSNR in dB, ``10 log10(data_range^2 / MSE)``; ``inf`` for identical images (as basicsr).

    ``data_range`` defaults to 1 for float images and must be given for integer ones.
    ``crop_border`` pixels are dropped on every side first (BasicSR uses the scale, 4).
    """
    a, b, data_range = _pair(sr, hr, crop_border, data_range)
    err = float(np.mean((a - b) ** 2))
    return float("inf") if err == 0 else float(10.0 * np.log10(data_range**2 / err))


def ssim(
    sr: np.ndarray, hr: np.ndarray, *, data_range: float | None = None, crop_border: int = 0
) -> float:
    """SSIM (Wang et al. 2004) as BasicSR computes it, via scikit-image.

    ``skimage.metrics.structural_similarity`` with ``gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=data_range`` on float64 pixels: an 11x11 Gaussian
    window (skimage truncates at 3.5 sigma: radius 5) with population covariances, K1 = 0.01,
    K2 = 0.03, averaged over the pixels at least 5 from the border. BasicSR's
    ``calculate_ssim`` uses ``cv2.filter2D`` with the same normalised 11x11 window and crops
    5 pixels ('valid' mode), so the two border treatments (reflect vs. reflect-101) never
    enter the mean; both crop ``crop_border`` pixels before filtering. What remains is float
    summation order, about 1e-13. Two things would break parity: float32 pixels
    (scikit-image then computes in float32, ~2e-6 off; hence the cast here) and feeding
    basicsr float32 images scaled by 255 (its own rounding, ~3e-10).
    """
    a, b, data_range = _pair(sr, hr, crop_border, data_range)
    return float(
        structural_similarity(
            a,
            b,
            data_range=data_range,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


def image_metrics(
    sr: np.ndarray, hr: np.ndarray, *, data_range: float | None = None, crop_border: int = 0
) -> dict[str, float]:
    """``{"psnr", "ssim", "mse"}`` of one SR image against its HR ground truth."""
    return {
        "psnr": psnr(sr, hr, data_range=data_range, crop_border=crop_border),
        "ssim": ssim(sr, hr, data_range=data_range, crop_border=crop_border),
        "mse": mse(sr, hr, crop_border=crop_border),
    }


def lr_consistency(
    sr: np.ndarray,
    lr: np.ndarray,
    *,
    method: str = "bicubic",
    data_range: float | None = None,
    crop_border: int = 0,
) -> float:
    """PSNR between the SR image downsampled to the LR size and the LR input itself.

    The downsampling is the one that made the LR images (:func:`radiographs.resize`,
    ``method``), so a perfectly consistent SR image scores ``inf``; an SR method that invents
    or moves structure scores lower. (An LR image that was clipped or quantised after resizing
    cannot be matched exactly, so real values are finite.) ``crop_border`` is in LR pixels.
    """
    sr, lr = np.asarray(sr), np.asarray(lr)
    if sr.ndim != 2 or lr.ndim != 2:
        raise ValueError(f"lr_consistency takes 2-D images, got {sr.shape} and {lr.shape}.")
    factor = sr.shape[0] / lr.shape[0]
    if sr.shape[0] % lr.shape[0] or sr.shape[1] != lr.shape[1] * factor:
        raise ValueError(
            f"SR shape {sr.shape} is not an integer multiple of LR shape {lr.shape} on both axes."
        )
    # Decide before resizing: radiographs.resize returns float32 even for integer input.
    data_range = _data_range(sr, lr, data_range)
    down = radiographs.resize(sr.astype(np.float32), (lr.shape[1], lr.shape[0]), method=method)
    return psnr(down, lr.astype(np.float32), data_range=data_range, crop_border=crop_border)


def difference_map(sr: np.ndarray, hr: np.ndarray) -> np.ndarray:
    """``|SR - HR|`` per pixel as float32 (in the images' units), for error figures."""
    sr, hr = np.asarray(sr), np.asarray(hr)
    if sr.shape != hr.shape:
        raise ValueError(f"Image shapes differ: {sr.shape} vs {hr.shape}.")
    return np.abs(sr.astype(np.float64) - hr.astype(np.float64)).astype(np.float32)


def _check_long(per_image: pd.DataFrame, needed: Sequence[str]) -> None:
    missing = [c for c in needed if c not in per_image.columns]
    if missing:
        raise ValueError(
            f"Per-image table lacks column(s) {missing}; it has {list(per_image.columns)}."
        )


def _present_metrics(per_image: pd.DataFrame, metrics: Sequence[str] | None) -> list[str]:
    if metrics is not None:
        return list(metrics)
    found = [m for m in METRICS if m in per_image.columns]
    if not found:
        raise ValueError(f"Per-image table has none of the metric columns {list(METRICS)}.")
    return found


def summary_table(
    per_image: pd.DataFrame,
    *,
    metrics: Sequence[str] | None = None,
    by: Sequence[str] = ("dataset", "method"),
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean with bootstrap CI of each metric per ``by`` group, as a tidy long table.

    ``per_image`` has one row per (dataset, image, method) and a column per metric
    (``metrics`` defaults to those of :data:`METRICS` present). The result has columns
    ``[*by, "metric", "n", "mean", "ci_low", "ci_high"]``, sorted by ``by`` then metric. Every
    cell uses a Generator from the same ``seed``, so a cell's CI does not depend on which other
    groups are in the table.
    """
    by = list(by)
    metrics = _present_metrics(per_image, metrics)
    _check_long(per_image, [*by, *metrics])
    rows = []
    for keys, group in per_image.groupby(by, sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        for metric in metrics:
            ci = bootstrap.bootstrap_mean_ci(
                group[metric].to_numpy(),
                confidence=confidence,
                n_resamples=n_resamples,
                seed=seed,
            )
            rows.append({**dict(zip(by, keys, strict=True)), "metric": metric, **ci})
    return pd.DataFrame(rows, columns=[*by, "metric", "n", "mean", "ci_low", "ci_high"])


def compare_methods(
    per_image: pd.DataFrame,
    method_a: str,
    method_b: str,
    *,
    metrics: Sequence[str] | None = None,
    by: Sequence[str] = ("dataset",),
    image_column: str = "image",
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`significance.paired_test` of ``method_a`` vs ``method_b`` per ``by`` group and metric.

    ``favours`` follows each metric's direction (:data:`HIGHER_IS_BETTER`; unknown metrics
    count as higher-is-better). Images are paired on ``[*by, image_column]``; an image scored
    by only one of the two methods, or twice by one, raises (a silently smaller n would bias
    the comparison).
    """
    by = list(by)
    metrics = _present_metrics(per_image, metrics)
    keys = [*by, image_column]
    _check_long(per_image, [*keys, "method", *metrics])
    sub = per_image[per_image["method"].isin([method_a, method_b])]
    if sub.duplicated([*keys, "method"]).any():
        raise ValueError(f"Some images appear more than once per method in {keys}.")
    wide = sub.pivot(index=keys, columns="method", values=metrics)
    for method in (method_a, method_b):
        if method not in sub["method"].values:
            raise ValueError(f"No rows for method {method!r}.")
    unpaired = wide.isna().any(axis=1)
    if unpaired.any():
        raise ValueError(
            f"{int(unpaired.sum())} image(s) lack a score for {method_a!r} or {method_b!r}, "
            f"e.g. {wide.index[unpaired][0]}."
        )
    rows = []
    for group_keys, group in wide.groupby(level=by, sort=True) if by else [((), wide)]:
        group_keys = group_keys if isinstance(group_keys, tuple) else (group_keys,)
        for metric in metrics:
            row = significance.paired_test(
                group[(metric, method_a)].to_numpy(),
                group[(metric, method_b)].to_numpy(),
                metric=metric,
                name_a=method_a,
                name_b=method_b,
                higher_is_better=HIGHER_IS_BETTER.get(metric, True),
                confidence=confidence,
                n_resamples=n_resamples,
                seed=seed,
            )
            rows.append({**dict(zip(by, group_keys, strict=True)), **row})
    return pd.DataFrame(rows)
