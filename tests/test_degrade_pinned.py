"""The degradation's outputs, pinned: refactoring it must not change one random draw or op.

``tests/data/degrade_pinned.npz`` holds the 8-bit LR of each case below and
``degrade_pinned.json`` its random decisions (and their order) and a summary (mean, std, min,
max) of every intermediate image, all recorded with the code before issue 8's split of
``degrade.py``. The decisions must be equal, the LR the same 8-bit levels (atol 1e-6 on
[0, 1]) and the summaries equal within 1e-6: a reordered op or an extra random draw moves them
far more. The same values came out with :data:`cxrsr_utils.core.cpu.AVX2_ONLY_ENV` set (the slow
test below checks it), so the tolerance only absorbs other builds' last-bit differences.

Regenerate (only for an intended change of the degradation) with
``python -m tests.test_degrade_pinned --write``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cxrsr_utils.core import cpu
from cxrsr_utils.core.params import load_params
from cxrsr_utils.core.repro import seeded
from cxrsr_utils.degradation import kernels as degrade_kernels
from cxrsr_utils.degradation import options as degrade_options
from cxrsr_utils.degradation import pipeline as degrade
from cxrsr_utils.sr.upstream import DiffJPEG, USMSharp

DATA = Path(__file__).parent / "data"
ARRAYS = DATA / "degrade_pinned.npz"
SUMMARIES = DATA / "degrade_pinned.json"
ATOL = 1e-6


def _image(n: int) -> np.ndarray:
    """A fixed gray test card (rings, checkerboard, gradient) at 8-bit levels; no randomness."""
    y, x = np.mgrid[0:n, 0:n].astype(np.float64) / n
    rings = 0.3 * np.sin(12 * np.hypot(x - 0.4, y - 0.6)) * np.cos(5 * x)
    checks = 0.15 * ((np.floor(x * 8) + np.floor(y * 8)) % 2)
    image = 0.5 + rings + checks - 0.1 * y
    return (np.clip(np.rint(image * 255), 0, 255) / 255).astype(np.float32)


def _options(**overrides: Any) -> dict[str, Any]:
    return degrade_options.degradation_options(**overrides)


def _profile_options(profile: str) -> dict[str, Any]:
    return _options(**load_params(profile).degradation.model_dump())


def _direct(seed: int, mode: degrade.Mode) -> degrade.Degraded:
    """degrade_batch as training's feed_data calls it: kernels from the data loader's draws."""
    a128 = _image(128)
    gt = degrade.gray_to_batch([a128, np.ascontiguousarray(a128.T)])
    options = _profile_options("quick")
    with seeded(seed):
        kernels = degrade_kernels.sample_kernels(2, options)
    with seeded(seed + 100), torch.no_grad():
        return degrade.degrade_batch(
            gt,
            **kernels,
            options={**options, "scale": 4},
            jpeger=DiffJPEG(differentiable=False),
            usm_sharpener=USMSharp(),
            mode=mode,
            keep_stages=True,
        )


def _cases() -> Iterator[tuple[str, Callable[[], degrade.Degraded]]]:
    a96, a128 = _image(96), _image(128)
    pair = [a128, np.ascontiguousarray(a128[::-1])]
    custom = {
        "keep_gauss_noblur2": {
            "resize_prob": (0, 0, 1),
            "second_blur_prob": 0.0,
            "gaussian_noise_prob": 1.0,
        },
        "sinc_up": {
            "sinc_prob": 1.0,
            "sinc_prob2": 1.0,
            "final_sinc_prob": 0.0,
            "resize_prob": (1, 0, 0),
            "resize_prob2": (1, 0, 0),
            "gaussian_noise_prob2": 0.0,
        },
        "down_poisson_gray": {
            "resize_prob": (0, 1, 0),
            "resize_prob2": (0, 1, 0),
            "gaussian_noise_prob": 0.0,
            "gray_noise_prob": 1.0,
            "gray_noise_prob2": 1.0,
            "jpeg_range": (60, 61),
        },
    }
    for profile, seeds in (("quick", range(4)), ("paper", range(2))):
        for seed in seeds:
            yield (
                f"{profile}/s{seed}",
                lambda p=profile, s=seed: degrade.degrade(
                    a96, seed=s, options=_profile_options(p), return_stages=True
                ),
            )
    yield "default_pair/s0", lambda: degrade.degrade(pair, seed=0)
    yield "bicubic/s0", lambda: degrade.degrade(a96, seed=0, mode="bicubic", return_stages=True)
    for name, overrides in custom.items():
        yield (
            f"{name}/s0",
            lambda o=overrides: degrade.degrade(
                a96, seed=0, options=_options(**o), return_stages=True
            ),
        )
    yield "scale2/s0", lambda: degrade.degrade(_image(80), seed=0, scale=2, return_stages=True)
    for seed in range(2):
        yield f"batch/s{seed}", lambda s=seed: _direct(s, "realesrgan")
    yield "batch_bicubic/s0", lambda: _direct(0, "bicubic")


def _summary(image: torch.Tensor) -> list[float]:
    a = image.double()
    return [float(a.mean()), float(a.std()), float(a.min()), float(a.max())]


def _record(result: degrade.Degraded) -> tuple[np.ndarray, dict[str, Any]]:
    lr = np.rint(result.lr.numpy() * 255).astype(np.uint8)
    images = dict(result.stages)
    if result.gt_usm is not None:
        images["gt_usm"] = result.gt_usm
    summary = {
        "decisions": result.decisions,
        # Notebook 02 prints the decisions in this order (an nbval-checked output).
        "decision_order": list(result.decisions),
        "shapes": {k: list(v.shape) for k, v in images.items()},
        "summaries": {k: _summary(v) for k, v in images.items()},
    }
    return lr, summary


@pytest.mark.parametrize("name, make", list(_cases()), ids=[name for name, _ in _cases()])
def test_degradation_equals_the_pinned_output(name: str, make: Callable) -> None:
    expected = json.loads(SUMMARIES.read_text())[name]
    lr, got = _record(make())
    assert got["decisions"] == expected["decisions"]
    assert got["decision_order"] == expected["decision_order"]
    assert got["shapes"] == expected["shapes"]
    with np.load(ARRAYS) as arrays:
        pinned_lr = arrays[name]
    # The LR is at 8-bit levels: atol 1e-6 on [0, 1] means the very same levels.
    assert lr.shape == pinned_lr.shape
    assert np.array_equal(lr, pinned_lr)
    for stage, values in expected["summaries"].items():
        np.testing.assert_allclose(
            got["summaries"][stage], values, rtol=0, atol=ATOL, err_msg=stage
        )


@pytest.mark.slow
def test_pinned_output_holds_with_avx2_kernels() -> None:
    """The same check in a process limited to AVX2 kernels, as on the project's AVX2-only CPUs."""
    env = {**os.environ, **cpu.AVX2_ONLY_ENV}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__]
    cmd += ["-k", "equals_the_pinned_output"]
    proc = subprocess.run(
        cmd, cwd=Path(__file__).parents[1], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _write() -> None:
    arrays, summaries = {}, {}
    for name, make in _cases():
        arrays[name], summaries[name] = _record(make())
    np.savez_compressed(ARRAYS, **arrays)
    SUMMARIES.write_text(json.dumps(summaries, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.test_degrade_pinned --write")
    _write()
