"""Notebook 02's helpers: the settings table, HR crops, tiles, LR fidelity and its summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cxrsr_utils.core.layout import StudyLayout
from cxrsr_utils.core.params import load_params
from cxrsr_utils.core.params_data import DegradationParams
from cxrsr_utils.degradation import pipeline as degrade
from cxrsr_utils.degradation import preview as degrade_preview
from cxrsr_utils.degradation.options import degradation_options
from cxrsr_utils.images.radiographs import write_png
from cxrsr_utils.reporting import metric_figures


def test_degradation_table_shows_the_profiles_values() -> None:
    table = degrade_preview.degradation_table(load_params("quick").degradation)
    assert list(table.columns) == ["stage", "blur", "resize (up / down / keep)", "noise", "JPEG"]
    one, two = (table.iloc[i].to_dict() for i in range(2))
    assert (one["stage"], two["stage"]) == (1, 2)
    assert one["resize (up / down / keep)"] == "0.2 / 0.7 / 0.1 over [0.15, 1.5]"
    assert two["resize (up / down / keep)"] == "0.3 / 0.4 / 0.3 over [0.3, 1.2]"
    assert one["noise"] == (
        "Gaussian p 0.5 (sigma 1–30) else Poisson (scale 0.05–3); gray noise p 0.4"
    )
    assert two["noise"].startswith("Gaussian p 0.5 (sigma 1–25) else Poisson (scale 0.05–2.5)")
    assert one["blur"].startswith("always; kernels iso 0.45, aniso 0.25, generalized_iso 0.12")
    assert "sinc p 0.1; sigma 0.2–3," in one["blur"]
    assert two["blur"].startswith("p 0.8;") and "sigma 0.2–1.5," in two["blur"]
    assert one["JPEG"] == "quality 30–95"
    assert two["JPEG"].startswith("quality 30–95; final sinc filter p 0.8")


def test_degradation_table_follows_the_settings_and_checks_them() -> None:
    changed = DegradationParams(second_blur_prob=0.25, resize_prob=(0, 0, 1), jpeg_range2=(50, 60))
    table = degrade_preview.degradation_table(changed)
    assert table.loc[0, "resize (up / down / keep)"].startswith("0 / 0 / 1 over")
    assert table.loc[1, "blur"].startswith("p 0.25;")
    assert table.loc[1, "JPEG"].startswith("quality 50–60;")
    # The option dict training uses gives the same table as the profile section.
    as_options = degradation_options(**changed.model_dump())
    pd.testing.assert_frame_equal(degrade_preview.degradation_table(as_options), table)
    with pytest.raises(ValueError, match="blur_kernel_size"):
        degrade_preview.degradation_table({"blur_kernel_size": 15})


def test_lr_fidelity_table(hr_image: np.ndarray) -> None:
    hr = degrade.gray_to_batch(hr_image)
    matched = degrade.degrade(hr, seed=0, mode="bicubic").lr
    degraded = degrade.degrade(hr, seed=0).lr
    table_m = degrade_preview.lr_fidelity(hr, matched)
    table_d = degrade_preview.lr_fidelity(hr, degraded)
    assert list(table_m.columns) == ["image", "psnr_db", "ssim"]
    assert 20 < table_m.psnr_db[0] < 60 and 0 < table_m.ssim[0] <= 1
    assert table_d.psnr_db[0] < table_m.psnr_db[0]
    assert table_d.ssim[0] < table_m.ssim[0]
    perfect = degrade_preview.lr_fidelity(
        torch.full((1, 3, 32, 32), 0.5), torch.full((1, 3, 8, 8), 0.5)
    )
    assert perfect.psnr_db[0] > 40 and perfect.ssim[0] == pytest.approx(1.0, abs=1e-4)


def test_centre_crop_is_central_and_a_multiple_of_the_scale() -> None:
    image = np.arange(30 * 50, dtype=np.float32).reshape(30, 50)
    crop = degrade_preview.centre_crop(image, 256, 4)
    assert crop.shape == (28, 28)
    assert crop[0, 0] == image[1, 11]  # (30 - 28) // 2, (50 - 28) // 2
    assert degrade_preview.centre_crop(image, 10, 4).shape == (8, 8)
    with pytest.raises(ValueError, match="fits"):
        degrade_preview.centre_crop(image[:3, :3], 256, 4)


def test_hr_crops_are_the_manifests_first_originals(tmp_path: Path) -> None:
    layout = StudyLayout(tmp_path)
    rows = []
    for i, role in enumerate(["multiscale", "original", "crop", "original", "original"]):
        path = f"nih/finetune/{role}_{i}.png"
        pixels = np.full((40 + i, 30), 10 * i, np.uint8)
        write_png(layout.data / path, pixels)
        rows.append({"path": path, "role": role})
    layout.reports.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(layout.data_manifest, index=False)
    crops = degrade_preview.hr_crops(layout, n=2, size=24, multiple=4)
    assert list(crops) == ["nih/finetune/original_1.png", "nih/finetune/original_3.png"]
    assert all(c.shape == (24, 24) for c in crops.values())
    assert crops["nih/finetune/original_3.png"][0, 0] == pytest.approx(30 / 255)
    assert degrade_preview.hr_crops(layout, n=5, size=999, multiple=4).keys() == {
        "nih/finetune/original_1.png",
        "nih/finetune/original_3.png",
        "nih/finetune/original_4.png",
    }


def test_tiles_and_decisions_for_the_figures(hr_image: np.ndarray) -> None:
    one = degrade.degrade(hr_image, seed=3, return_stages=True)
    tiles = degrade_preview.stage_tiles(one)
    assert [name for name, _ in tiles] == list(degrade.STAGES)
    assert np.array_equal(tiles[-1][1], degrade.batch_to_gray(one.lr)[0])
    draws = degrade_preview.draw_tiles(hr_image, seed=3, n=2)
    second = degrade.degrade(hr_image, seed=4)
    assert draws[1][0] == f"seed +1: {second.decisions['resize1']}/{second.decisions['noise1']}"
    assert np.array_equal(draws[1][1], degrade.batch_to_gray(second.lr)[0])
    scalar = degrade_preview.scalar_decisions({"a": 0.12345, "b": [1, 2], "c": "up", "d": True})
    assert scalar == {"a": 0.123, "c": "up", "d": True}


def test_fidelity_table_is_reproducible_and_bicubic_is_mild(hr_image: np.ndarray) -> None:
    crops = {"a": hr_image, "b": np.ascontiguousarray(hr_image[::-1, ::-1])}
    table = degrade_preview.fidelity_table(crops, draws=2, seed=5)
    assert len(table) == 2 * 2 * len(degrade.MODES)
    assert list(table.columns) == ["mode", "image", "draw", "psnr", "ssim"]
    pd.testing.assert_frame_equal(table, degrade_preview.fidelity_table(crops, draws=2, seed=5))
    # draw k of image i uses seed + 1000 i + k: the same row as a degradation on its own
    lr = degrade.degrade(crops["b"], seed=5 + 1000 + 1, mode="bicubic").lr
    alone = degrade_preview.lr_fidelity(degrade.gray_to_batch(crops["b"]), lr)
    row = table[(table["image"] == "b") & (table["draw"] == 1) & (table["mode"] == "bicubic")]
    assert float(row.psnr.iloc[0]) == float(alone.psnr_db[0])
    bicubic = table[table["mode"] == "bicubic"]
    assert (bicubic.psnr > 25).all() and (bicubic.ssim > 0.7).all()


def test_fidelity_summary_and_histograms() -> None:
    psnr = np.arange(1.0, 21.0)
    fidelity = pd.DataFrame(
        {
            "mode": ["realesrgan"] * 20 + ["bicubic"] * 20,
            "psnr": np.concatenate([psnr, psnr + 10]),
            "ssim": np.concatenate([psnr / 64, psnr / 32]),
        }
    )
    summary = degrade_preview.fidelity_summary(fidelity)
    stats = ["count", "mean", "5%", "50%", "95%"]
    assert list(summary.columns) == ["mode"] + [f"{m} {s}" for m in ("psnr", "ssim") for s in stats]
    assert list(summary["mode"]) == ["bicubic", "realesrgan"]  # groupby's sorted order
    real = summary.set_index("mode").loc["realesrgan"]
    assert real["psnr count"] == 20 and real["psnr mean"] == 10.5
    assert real["psnr 5%"] == round(float(np.percentile(psnr, 5)), 3) == 1.95
    assert real["ssim 95%"] == round(float(np.percentile(psnr / 64, 95)), 3) == 0.298
    fig = metric_figures.fidelity_histograms(fidelity)
    assert [ax.get_xlabel() for ax in fig.axes] == ["psnr", "ssim"]
    assert tuple(fig.get_size_inches()) == (9.0, 3.0)
