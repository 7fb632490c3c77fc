"""Metrics match BasicSR's; the tables over images give known answers on constructed data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrsr_utils.images import radiographs
from cxrsr_utils.sr.upstream import calculate_psnr, calculate_ssim
from cxrsr_utils.stats import rounding
from cxrsr_utils.stats.image_metrics import (
    DIGITS,
    compare_methods,
    difference_map,
    image_metrics,
    lr_consistency,
    mse,
    psnr,
    ssim,
    summary_table,
)


@pytest.fixture(scope="module")
def real_pair(nih_images: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """(bicubic-upsampled LR, HR) of a real NIH radiograph, float64 in [0, 1]."""
    hr = radiographs.read_radiograph(nih_images[0]).as_float().astype(np.float64)
    lr = radiographs.resize(hr, (256, 256))
    sr = np.clip(radiographs.resize(lr, (1024, 1024)), 0, 1).astype(np.float64)
    return sr, hr


@pytest.mark.parametrize("crop_border", [0, 4])
def test_psnr_ssim_match_basicsr_on_a_real_pair(
    real_pair: tuple[np.ndarray, np.ndarray], crop_border: int
) -> None:
    sr, hr = real_pair
    # basicsr takes HWC images in 0..255; float64 so that its own scaling does not round.
    ref_psnr = calculate_psnr(
        sr[..., None] * 255.0, hr[..., None] * 255.0, crop_border, input_order="HWC"
    )
    ref_ssim = calculate_ssim(
        sr[..., None] * 255.0, hr[..., None] * 255.0, crop_border, input_order="HWC"
    )
    ours = image_metrics(sr, hr, crop_border=crop_border)
    assert 30 < ours["psnr"] < 60 and 0.8 < ours["ssim"] < 1.0  # a real, imperfect pair
    assert abs(ours["psnr"] - ref_psnr) < 1e-10
    assert abs(ours["ssim"] - ref_ssim) < 1e-10


def test_metrics_match_basicsr_on_8bit_pixels(real_pair: tuple[np.ndarray, np.ndarray]) -> None:
    sr8, hr8 = (radiographs.to_pixels(x, 255) for x in real_pair)
    ref = calculate_ssim(sr8[..., None], hr8[..., None], 4, input_order="HWC")
    assert abs(ssim(sr8, hr8, data_range=255, crop_border=4) - ref) < 1e-10
    assert abs(ssim(sr8 / 255.0, hr8 / 255.0, crop_border=4) - ref) < 1e-10
    ref = calculate_psnr(sr8[..., None], hr8[..., None], 4, input_order="HWC")
    assert abs(psnr(sr8, hr8, data_range=255, crop_border=4) - ref) < 1e-10


def test_psnr_mse_known_values_and_crop_border() -> None:
    hr = np.zeros((32, 32))
    sr = hr + 0.1
    assert mse(sr, hr) == pytest.approx(0.01)
    assert psnr(sr, hr) == pytest.approx(20.0)
    assert psnr(sr * 255, hr, data_range=255.0) == pytest.approx(20.0)
    framed = hr.copy()
    framed[:4], framed[-4:], framed[:, :4], framed[:, -4:] = 1, 1, 1, 1
    assert psnr(framed, hr, crop_border=4) == float("inf")
    assert np.isfinite(psnr(framed, hr, crop_border=3))
    assert ssim(hr + 0.5, hr + 0.5) == pytest.approx(1.0)
    assert ssim(np.random.default_rng(0).random((32, 32)), hr + 0.5) < 0.1


def test_metric_input_errors() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="data_range"):
        psnr(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="crop_border"):
        psnr(np.zeros((8, 8)), np.zeros((8, 8)), crop_border=4)


def test_lr_consistency(real_pair: tuple[np.ndarray, np.ndarray]) -> None:
    _, hr = real_pair
    hr = hr[:256, :256].astype(np.float32)
    lr = radiographs.resize(hr, (64, 64))
    assert lr_consistency(hr, lr) == float("inf")  # HR downsamples exactly to its LR
    bicubic = np.clip(radiographs.resize(lr, (256, 256)), 0, 1)
    noisy = np.clip(hr + np.random.default_rng(0).normal(0, 0.05, hr.shape), 0, 1)
    assert 25 < lr_consistency(noisy, lr) < lr_consistency(bicubic, lr) < np.inf
    with pytest.raises(ValueError, match="multiple"):
        lr_consistency(hr[:, :200], lr)


def test_difference_map() -> None:
    a = np.array([[0.0, 0.5], [1.0, 0.25]], np.float32)
    b = np.array([[0.5, 0.5], [0.0, 1.0]], np.float32)
    np.testing.assert_allclose(difference_map(a, b), [[0.5, 0.0], [1.0, 0.75]])
    assert difference_map(a, b).dtype == np.float32


@pytest.fixture
def per_image() -> pd.DataFrame:
    rng = np.random.default_rng(9)
    rows = []
    for dataset, n in (("nih", 12), ("kermany", 8)):
        base = rng.normal(30, 1, size=n)
        for method, shift in (("bicubic", 0.0), ("esrgan", 1.0)):
            for i in range(n):
                value = base[i] + shift + rng.normal(0, 0.05)
                rows.append(
                    {
                        "dataset": dataset,
                        "image": f"{dataset}-{i}",
                        "method": method,
                        "psnr": value,
                        "ssim": 0.9 + shift / 20,
                        "mse": 10 ** (-value / 10),
                    }
                )
    return pd.DataFrame(rows)


def test_summary_table(per_image: pd.DataFrame) -> None:
    table = summary_table(per_image, n_resamples=1000)
    assert list(table.columns) == ["dataset", "method", "metric", "n", "mean", "ci_low", "ci_high"]
    assert len(table) == 2 * 2 * 3
    expected = per_image.groupby(["dataset", "method"])["psnr"].mean()
    got = table[table.metric == "psnr"].set_index(["dataset", "method"])["mean"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)
    assert (table.ci_low <= table["mean"]).all() and (table["mean"] <= table.ci_high).all()
    assert set(table[table.dataset == "kermany"].n) == {8}
    # A cell's CI does not depend on the other groups in the table.
    alone = summary_table(per_image[per_image.dataset == "nih"], n_resamples=1000)
    pd.testing.assert_frame_equal(alone, table[table.dataset == "nih"].reset_index(drop=True))
    rounded = rounding.round_table(table, DIGITS)
    assert (
        rounded[rounded.metric == "psnr"]["mean"] == table[table.metric == "psnr"]["mean"].round(2)
    ).all()
    assert (
        rounded[rounded.metric == "ssim"]["ci_low"]
        == table[table.metric == "ssim"]["ci_low"].round(4)
    ).all()


def test_compare_methods(per_image: pd.DataFrame) -> None:
    table = compare_methods(per_image, "esrgan", "bicubic", n_resamples=1000)
    assert len(table) == 2 * 3
    psnr_rows = table[table.metric == "psnr"]
    assert (psnr_rows.favours == "esrgan").all()
    assert psnr_rows.mean_diff.between(0.9, 1.1).all()
    assert (psnr_rows.p_value < 0.01).all()
    assert (table[table.metric == "mse"].favours == "esrgan").all()
    rounded = rounding.round_table(table, DIGITS)
    assert (rounded.mean_diff == rounded.mean_diff.round(6)).all()
    with pytest.raises(ValueError, match="lack a score"):
        compare_methods(per_image.iloc[1:], "esrgan", "bicubic")
