"""The training degradation: paper values, determinism, equality with realesrgan, frequencies."""

from __future__ import annotations

import math
import random
import types

import numpy as np
import pytest
import torch

from cxrsr_utils.core.repro import seeded
from cxrsr_utils.degradation import kernels as degrade_kernels
from cxrsr_utils.degradation import options as degrade_options
from cxrsr_utils.degradation import pipeline as degrade
from cxrsr_utils.images.radiographs import resize as pil_resize
from cxrsr_utils.sr.upstream import DiffJPEG, RealESRGANModel, USMSharp


def test_default_options_are_the_papers() -> None:
    o = degrade_options.degradation_options()
    assert o["resize_prob"] == [0.2, 0.7, 0.1] and o["resize_range"] == [0.15, 1.5]
    assert o["gaussian_noise_prob"] == 0.5 and o["noise_range"] == [1, 30]
    assert o["poisson_scale_range"] == [0.05, 3] and o["gray_noise_prob"] == 0.4
    assert o["jpeg_range"] == [30, 95] and o["second_blur_prob"] == 0.8
    assert o["resize_prob2"] == [0.3, 0.4, 0.3] and o["resize_range2"] == [0.3, 1.2]
    assert o["noise_range2"] == [1, 25] and o["poisson_scale_range2"] == [0.05, 2.5]
    assert o["jpeg_range2"] == [30, 95]
    # Real-ESRGAN's finetune_realesrgan_x4plus.yml for the rest.
    assert o["blur_kernel_size"] == o["blur_kernel_size2"] == 21
    assert (
        o["kernel_list"]
        == o["kernel_list2"]
        == ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]
    )
    assert o["kernel_prob"] == o["kernel_prob2"] == [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]
    assert o["sinc_prob"] == o["sinc_prob2"] == 0.1 and o["final_sinc_prob"] == 0.8
    assert o["blur_sigma"] == [0.2, 3] and o["blur_sigma2"] == [0.2, 1.5]
    assert o["betag_range"] == o["betag_range2"] == [0.5, 4]
    assert o["betap_range"] == o["betap_range2"] == [1, 2]
    assert (o["l1_gt_usm"], o["percep_gt_usm"], o["gan_gt_usm"]) == (True, True, False)
    assert set(o) == set(degrade_options.KERNEL_KEYS) | set(degrade_options.PIPELINE_KEYS)


@pytest.mark.parametrize(
    "bad",
    [
        {"resize_prob": (0.5, 0.5, 0.5)},
        {"resize_range": (1.2, 1.5)},
        {"kernel_prob": (1.0,)},
        {"sinc_prob": 1.5},
        {"blur_kernel_size": 15},
    ],
)
def test_invalid_options_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        degrade_options.degradation_options(**bad)


def test_same_seed_same_lr_and_caller_state_untouched(hr_image: np.ndarray) -> None:
    random.seed(123)
    expected_next = random.random()
    random.seed(123)
    a = degrade.degrade(hr_image, seed=7)
    assert random.random() == expected_next  # degrade() leaves the global streams alone
    b = degrade.degrade(hr_image, seed=7)
    c = degrade.degrade(hr_image, seed=8)
    assert a.lr.shape == (1, 3, 24, 24)
    assert torch.equal(a.lr, b.lr) and a.decisions == b.decisions
    assert not torch.equal(a.lr, c.lr)
    assert float(a.lr.min()) >= 0 and float(a.lr.max()) <= 1
    assert torch.equal(a.lr, degrade.quantize(a.lr))  # 8-bit levels, as realesrgan rounds


def test_stages_for_the_figure(hr_image: np.ndarray) -> None:
    result = degrade.degrade(hr_image, seed=3, return_stages=True)
    assert tuple(result.stages) == degrade.STAGES
    assert result.stages["hr"].shape == (1, 3, 96, 96)
    assert result.stages["blur1"].shape == (1, 3, 96, 96)
    assert result.stages["jpeg_sinc2"].shape == result.stages["lr"].shape == (1, 3, 24, 24)
    assert torch.equal(result.stages["lr"], result.lr)
    scale1 = result.decisions["scale1"]
    assert result.stages["resize1"].shape[-1] == math.floor(96 * scale1)
    assert degrade.degrade(hr_image, seed=3).stages == {}


def _feed_data_like_realesrgan(gt: torch.Tensor, kernels: dict, options: dict) -> torch.Tensor:
    """Run realesrgan's own RealESRGANModel.feed_data on a stand-in model (CPU, no networks)."""
    jpeger = DiffJPEG(differentiable=False)
    fake = types.SimpleNamespace(
        is_train=True,
        device=torch.device("cpu"),
        opt={**options, "scale": 4, "gt_size": gt.shape[-1]},  # full-size crop: identity
        usm_sharpener=USMSharp(),
        # realesrgan's code fails on CPU on DiffJPEG's non-contiguous output; same values.
        jpeger=lambda x, quality: jpeger(x, quality=quality).contiguous(),
        _dequeue_and_enqueue=lambda: None,
    )
    RealESRGANModel.feed_data(fake, {"gt": gt, **kernels})
    return fake.lq


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_degrade_batch_equals_realesrgan_feed_data(hr_image: np.ndarray, seed: int) -> None:
    options = degrade_options.degradation_options()
    gt = degrade.gray_to_batch([hr_image, hr_image[::-1].copy()])
    with seeded(seed):
        kernels = degrade_kernels.sample_kernels(2, options)
    with seeded(seed + 100):
        theirs = _feed_data_like_realesrgan(gt, kernels, options)
    with seeded(seed + 100):
        ours = degrade.degrade_batch(
            gt,
            **kernels,
            options=options,
            jpeger=DiffJPEG(differentiable=False),
            usm_sharpener=USMSharp(),
        )
    assert torch.equal(ours.lr, theirs)


def _identity_jpeg(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    return x


def _draw_decisions(n: int, options: dict) -> list[dict]:
    """The per-batch random choices of degrade_batch, with JPEG and USM stubbed out for speed."""
    gt = torch.full((1, 3, 76, 76), 0.5)
    pulse = torch.zeros(1, 21, 21)
    pulse[0, 10, 10] = 1
    out = []
    with seeded(0):
        for _ in range(n):
            out.append(
                degrade.degrade_batch(
                    gt,
                    kernel1=pulse,
                    kernel2=pulse,
                    sinc_kernel=pulse,
                    options=options,
                    jpeger=_identity_jpeg,
                    usm_sharpener=lambda x: x,
                ).decisions
            )
    return out


def _assert_frequency(values: list, value: object, p: float) -> None:
    n = len(values)
    observed = sum(v == value for v in values) / n
    tolerance = 4.5 * math.sqrt(p * (1 - p) / n) + 1e-9
    assert abs(observed - p) <= tolerance, f"{value}: {observed:.3f} vs p={p} (n={n})"


def test_branch_frequencies_follow_the_options() -> None:
    draws = _draw_decisions(1200, degrade_options.degradation_options())
    for value, p in zip(("up", "down", "keep"), (0.2, 0.7, 0.1), strict=True):
        _assert_frequency([d["resize1"] for d in draws], value, p)
    for value, p in zip(("up", "down", "keep"), (0.3, 0.4, 0.3), strict=True):
        _assert_frequency([d["resize2"] for d in draws], value, p)
    _assert_frequency([d["noise1"] for d in draws], "gaussian", 0.5)
    _assert_frequency([d["noise2"] for d in draws], "gaussian", 0.5)
    _assert_frequency([d["blur2"] for d in draws], True, 0.8)
    _assert_frequency([d["final_order"] for d in draws], "resize_sinc_jpeg", 0.5)
    scales = np.array([d["scale1"] for d in draws])
    assert scales.min() >= 0.15 and scales.max() <= 1.5
    # The options really drive the draws.
    changed = _draw_decisions(
        200,
        degrade_options.degradation_options(
            resize_prob=(0, 0, 1), second_blur_prob=0.0, gaussian_noise_prob=1.0
        ),
    )
    assert {d["resize1"] for d in changed} == {"keep"}
    assert not any(d["blur2"] for d in changed)
    assert {d["noise1"] for d in changed} == {"gaussian"}


def test_kernel_frequencies_follow_the_options() -> None:
    options = degrade_options.degradation_options()
    with seeded(0):
        k = degrade_kernels.sample_kernels(1000, options)
    # realesrgan's sinc kernels have negative lobes; its Gaussian-family kernels never do.
    _assert_frequency((k["kernel1"].flatten(1).amin(1) < 0).tolist(), True, 0.1)
    _assert_frequency((k["kernel2"].flatten(1).amin(1) < 0).tolist(), True, 0.1)
    _assert_frequency([not degrade_kernels.is_pulse(s) for s in k["sinc_kernel"]], True, 0.8)
    assert torch.allclose(k["kernel1"].sum((1, 2)), torch.ones(1000), atol=1e-4)
    with seeded(0):
        always = degrade_kernels.sample_kernels(
            50, degrade_options.degradation_options(sinc_prob=1.0, final_sinc_prob=0.0)
        )
    assert bool((always["kernel1"].flatten(1).amin(1) < 0).all())
    assert all(degrade_kernels.is_pulse(s) for s in always["sinc_kernel"])


def test_matched_mode_is_the_evaluation_bicubic(hr_image: np.ndarray) -> None:
    result = degrade.degrade(hr_image, seed=0, mode="bicubic")
    expected = pil_resize(hr_image, (24, 24))
    expected = np.clip(np.rint(expected * 255), 0, 255) / 255
    got = degrade.batch_to_gray(result.lr)[0]
    assert np.abs(got - expected).max() <= 1 / 255 + 1e-6
    assert np.mean(np.abs(got - expected) < 1e-6) > 0.95
    assert torch.equal(result.lr, degrade.degrade(hr_image, seed=99, mode="bicubic").lr)
    assert result.gt_usm is None


def test_too_small_or_odd_images_are_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        degrade.degrade(torch.rand(1, 3, 64, 64), seed=0)
    with pytest.raises(ValueError, match="divisible"):
        degrade.degrade(torch.rand(1, 3, 98, 98), seed=0)
    assert degrade.degrade(torch.rand(1, 3, 64, 64), seed=0, mode="bicubic").lr.shape[-1] == 16
