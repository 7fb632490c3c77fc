"""How low-resolution training inputs are made: Real-ESRGAN's two-stage degradation, or bicubic x4.

There is one implementation of the degradation, :func:`degrade_batch`. Training calls it from
the model's ``feed_data`` (see :mod:`cxrsr_utils.finetune_model`) and notebook 02 calls it through
:func:`degrade`, which only adds a seed and the per-image blur kernels. Both are built from
realesrgan/basicsr's own pieces: the kernels come from ``RealESRGANDataset.__getitem__``
itself and the torch ops are those of ``RealESRGANModel.feed_data`` (``filter2D``,
``random_add_gaussian_noise_pt``, ``random_add_poisson_noise_pt``, ``DiffJPEG``,
``USMSharp``), drawn from the random streams in the same order, so the LR images equal
realesrgan's for the same random state (``tests/test_degrade.py`` checks this).

Two modes:

``realesrgan``
    the paper's protocol: blur, resize, noise, JPEG, twice, then a sinc filter, on the
    USM-sharpened HR. Every probability and range is a key of
    :func:`degradation_options` (defaults: the paper's values, held by
    :class:`cxrsr_utils.params.DegradationParams`).
``bicubic``
    the evaluation's protocol ("matched"): antialiased bicubic x4 (Keys a = -0.5, equal to
    PIL's and :func:`cxrsr_utils.io.resize`) and 8-bit rounding, nothing else.

Images are float tensors ``(B, C, H, W)`` in ``[0, 1]``; the networks take three channels, so
gray radiographs are repeated over RGB (:func:`gray_to_batch`).
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from cxrsr_utils import metrics
from cxrsr_utils.io import resize as pil_resize
from cxrsr_utils.params import DegradationParams
from cxrsr_utils.repro import seeded
from cxrsr_utils.sr_backend import (
    DiffJPEG,
    RealESRGANDataset,
    USMSharp,
    calculate_ssim,
    degradations,
    filter2D,
)

Mode = Literal["realesrgan", "bicubic"]
MODES: tuple[Mode, ...] = ("realesrgan", "bicubic")


# Keys read by RealESRGANDataset (they go under ``datasets.train`` of a basicsr option dict)...
KERNEL_KEYS: tuple[str, ...] = (
    "blur_kernel_size",
    "kernel_list",
    "kernel_prob",
    "sinc_prob",
    "blur_sigma",
    "betag_range",
    "betap_range",
    "blur_kernel_size2",
    "kernel_list2",
    "kernel_prob2",
    "sinc_prob2",
    "blur_sigma2",
    "betag_range2",
    "betap_range2",
    "final_sinc_prob",
)
# ... and keys read by RealESRGANModel.feed_data / optimize_parameters (top level of the dict).
PIPELINE_KEYS: tuple[str, ...] = (
    "resize_prob",
    "resize_range",
    "gaussian_noise_prob",
    "noise_range",
    "poisson_scale_range",
    "gray_noise_prob",
    "jpeg_range",
    "second_blur_prob",
    "resize_prob2",
    "resize_range2",
    "gaussian_noise_prob2",
    "noise_range2",
    "poisson_scale_range2",
    "gray_noise_prob2",
    "jpeg_range2",
    "l1_gt_usm",
    "percep_gt_usm",
    "gan_gt_usm",
)

# The stages :func:`degrade` can return, in pipeline order (``realesrgan`` mode).
STAGES: tuple[str, ...] = (
    "hr",
    "hr_usm",
    "blur1",
    "resize1",
    "noise1",
    "jpeg1",
    "blur2",
    "resize2",
    "noise2",
    "jpeg_sinc2",
    "lr",
)

# realesrgan hard-codes this: blur kernels are 7..21 wide and padded to 21.
_KERNEL_SIZE = 21
_INTERP_MODES = ["area", "bilinear", "bicubic"]


def degradation_options(**overrides: Any) -> dict[str, Any]:
    """The degradation settings as a flat dict with realesrgan's key names.

    Defaults come from :class:`cxrsr_utils.params.DegradationParams`, the one place that holds
    the paper's values (stage 1 resize up/down/keep 0.2/0.7/0.1 over [0.15, 1.5], ...) and
    Real-ESRGAN's ``finetune_realesrgan_x4plus.yml`` for the rest; ``overrides`` replace any of
    them. The ``*_gt_usm`` flags say which losses compare with the USM-sharpened HR. Sequences
    become lists so the dict can go into a basicsr option file as is.
    """
    unknown = sorted(set(overrides) - set(DegradationParams.model_fields))
    if unknown:
        raise ValueError(
            f"Unknown degradation option(s) {unknown}; valid: "
            f"{', '.join(DegradationParams.model_fields)}."
        )
    opts: dict[str, Any] = {**DegradationParams().model_dump(), **overrides}
    for key, value in opts.items():
        if isinstance(value, tuple | list):
            opts[key] = list(value)
    _check_pipeline_options(opts)
    _check_kernel_options(opts)
    return opts


def _require(opts: Mapping[str, Any], keys: Sequence[str]) -> None:
    missing = [k for k in keys if k not in opts]
    if missing:
        raise ValueError(
            f"Degradation options lack {', '.join(missing)}; build them with degradation_options()."
        )


def _check_pipeline_options(opts: Mapping[str, Any]) -> None:
    """Check the keys feed_data reads (they sit at the top level of a basicsr option dict)."""
    _require(opts, PIPELINE_KEYS)
    for key in ("resize_prob", "resize_prob2"):
        probs = opts[key]
        if len(probs) != 3 or min(probs) < 0 or not math.isclose(sum(probs), 1.0, abs_tol=1e-6):
            raise ValueError(
                f"{key} must be three probabilities (up, down, keep) summing to 1, got {probs}."
            )
    for key in ("resize_range", "resize_range2"):
        low, high = opts[key]
        if not 0 < low <= 1 <= high:
            raise ValueError(f"{key} must satisfy 0 < low <= 1 <= high, got {opts[key]}.")
    _check_probabilities(
        opts,
        (
            "gaussian_noise_prob",
            "gray_noise_prob",
            "second_blur_prob",
            "gaussian_noise_prob2",
            "gray_noise_prob2",
        ),
    )


def _check_kernel_options(opts: Mapping[str, Any]) -> None:
    """Check the keys RealESRGANDataset reads (``datasets.train`` of a basicsr option dict)."""
    _require(opts, KERNEL_KEYS)
    for key in ("kernel_prob", "kernel_prob2"):
        list_key = key.replace("prob", "list")
        if len(opts[key]) != len(opts[list_key]):
            raise ValueError(
                f"{key} has {len(opts[key])} entries but {list_key} has {len(opts[list_key])}."
            )
    for key in ("blur_kernel_size", "blur_kernel_size2"):
        if opts[key] != _KERNEL_SIZE:
            # realesrgan pads every kernel to 21 no matter what the option says.
            raise ValueError(f"{key} must be {_KERNEL_SIZE}: realesrgan hard-codes 21x21 kernels.")
    _check_probabilities(opts, ("sinc_prob", "sinc_prob2", "final_sinc_prob"))


def _check_probabilities(opts: Mapping[str, Any], keys: Sequence[str]) -> None:
    for key in keys:
        if not 0 <= opts[key] <= 1:
            raise ValueError(f"{key} must be a probability in [0, 1], got {opts[key]}.")


@dataclass
class Degraded:
    """A degraded batch: ``lr`` (B, C, H/scale, W/scale) and the HR the losses compare with.

    ``gt_usm`` is the USM-sharpened HR the realesrgan pipeline starts from (None in ``bicubic``
    mode, which degrades the plain HR; training sharpens its crops afterwards in both modes,
    as realesrgan does). ``decisions`` records the per-batch random choices (resize
    direction, scale, interpolation, noise type, whether the second blur ran, the order of
    the last step, JPEG qualities) and, from :func:`degrade`, which kernels were sinc
    filters; ``stages`` holds the intermediate images (see :data:`STAGES`) when asked for.
    """

    lr: torch.Tensor
    gt_usm: torch.Tensor | None
    decisions: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, torch.Tensor] = field(default_factory=dict)


def quantize(image: torch.Tensor) -> torch.Tensor:
    """Round to 8-bit levels and clip, as realesrgan does to its final LR (and a PNG would)."""
    return torch.clamp((image * 255.0).round(), 0, 255) / 255.0


def bicubic_downsample(hr: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """Antialiased bicubic downsampling to ``(H // scale, W // scale)``, not rounded.

    torch's antialiased bicubic uses Keys a = -0.5 with a kernel widened by ``scale``, i.e. the
    same filter as PIL and :func:`cxrsr_utils.io.resize`, the study's evaluation bicubic.
    """
    h, w = hr.shape[-2:]
    return F.interpolate(
        hr, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False
    )


def _random_resize(
    out: torch.Tensor,
    probs: Sequence[float],
    scale_range: Sequence[float],
    size: tuple[int, int] | None,
    decisions: dict[str, Any],
    tag: str,
) -> torch.Tensor:
    """One random up/down/keep resize, consuming the RNGs exactly as realesrgan's feed_data."""
    updown = random.choices(["up", "down", "keep"], probs)[0]
    if updown == "up":
        factor = np.random.uniform(1, scale_range[1])
    elif updown == "down":
        factor = np.random.uniform(scale_range[0], 1)
    else:
        factor = 1
    mode = random.choice(_INTERP_MODES)
    decisions[f"resize{tag}"] = updown
    decisions[f"scale{tag}"] = float(factor)
    decisions[f"interp{tag}"] = mode
    if size is None:
        return F.interpolate(out, scale_factor=factor, mode=mode)
    return F.interpolate(out, size=(int(size[0] * factor), int(size[1] * factor)), mode=mode)


def _random_noise(
    out: torch.Tensor,
    gaussian_prob: float,
    sigma_range: Sequence[float],
    poisson_range: Sequence[float],
    gray_prob: float,
    decisions: dict[str, Any],
    tag: str,
) -> torch.Tensor:
    if np.random.uniform() < gaussian_prob:
        decisions[f"noise{tag}"] = "gaussian"
        return degradations.random_add_gaussian_noise_pt(
            out, sigma_range=sigma_range, clip=True, rounds=False, gray_prob=gray_prob
        )
    decisions[f"noise{tag}"] = "poisson"
    return degradations.random_add_poisson_noise_pt(
        out, scale_range=poisson_range, gray_prob=gray_prob, clip=True, rounds=False
    )


def _jpeg(
    out: torch.Tensor,
    jpeger: DiffJPEG,
    quality_range: Sequence[float],
    decisions: dict[str, Any],
    tag: str,
) -> torch.Tensor:
    quality = out.new_zeros(out.size(0)).uniform_(*quality_range)
    decisions[f"jpeg_quality{tag}"] = quality.tolist()
    # Clamp first: realesrgan notes JPEG of out-of-range values gives unpleasant artifacts.
    out = jpeger(torch.clamp(out, 0, 1), quality=quality)
    # On CPU DiffJPEG returns a channels-last-strided tensor and filter2D's .view() then fails.
    return out.contiguous()


def degrade_batch(
    gt: torch.Tensor,
    *,
    kernel1: torch.Tensor,
    kernel2: torch.Tensor,
    sinc_kernel: torch.Tensor,
    options: Mapping[str, Any],
    jpeger: DiffJPEG,
    usm_sharpener: USMSharp,
    mode: Mode = "realesrgan",
    scale: int = 4,
    keep_stages: bool = False,
) -> Degraded:
    """Degrade an HR batch exactly as training does (the one implementation of the pipeline).

    ``gt`` is ``(B, C, H, W)`` in [0, 1] on any device; the kernels are ``(B, 21, 21)`` as
    RealESRGANDataset returns them (see :func:`sample_kernels`). Randomness comes from
    Python's ``random``, NumPy's global generator and torch's default generator, consumed
    in realesrgan's order; seed them (or use :func:`degrade`) for a reproducible result.
    ``mode="bicubic"`` ignores the kernels and random streams and returns bicubic x4.
    """
    if mode not in MODES:
        raise ValueError(f"Unknown degradation mode {mode!r}; use one of {MODES}.")
    if gt.ndim != 4:
        raise ValueError(f"gt must be (B, C, H, W), got shape {tuple(gt.shape)}.")
    decisions: dict[str, Any] = {"mode": mode}
    stages: dict[str, torch.Tensor] = {}

    def keep(name: str, image: torch.Tensor) -> None:
        if keep_stages:
            stages[name] = image

    keep("hr", gt)
    if mode == "bicubic":
        # The evaluation's LR is bicubic of the plain HR, so the matched protocol uses it too
        # (and skips the full-size USM, the costliest op on CPU).
        lr = quantize(bicubic_downsample(gt, scale))
        keep("lr", lr)
        return Degraded(lr=lr, gt_usm=None, decisions=decisions, stages=stages)
    gt_usm = usm_sharpener(gt)
    keep("hr_usm", gt_usm)

    _check_pipeline_options(options)
    o = options
    ori_h, ori_w = gt.shape[2:4]
    # ----- first degradation (on the sharpened HR, as realesrgan does) -----
    out = filter2D(gt_usm, kernel1)
    keep("blur1", out)
    out = _random_resize(out, o["resize_prob"], o["resize_range"], None, decisions, "1")
    keep("resize1", out)
    out = _random_noise(
        out,
        o["gaussian_noise_prob"],
        o["noise_range"],
        o["poisson_scale_range"],
        o["gray_noise_prob"],
        decisions,
        "1",
    )
    keep("noise1", out)
    out = _jpeg(out, jpeger, o["jpeg_range"], decisions, "1")
    keep("jpeg1", out)
    # ----- second degradation -----
    decisions["blur2"] = bool(np.random.uniform() < o["second_blur_prob"])
    if decisions["blur2"]:
        out = filter2D(out, kernel2)
    keep("blur2", out)
    out = _random_resize(
        out, o["resize_prob2"], o["resize_range2"], (ori_h // scale, ori_w // scale), decisions, "2"
    )
    keep("resize2", out)
    out = _random_noise(
        out,
        o["gaussian_noise_prob2"],
        o["noise_range2"],
        o["poisson_scale_range2"],
        o["gray_noise_prob2"],
        decisions,
        "2",
    )
    keep("noise2", out)
    # [resize back + sinc] and JPEG in random order; realesrgan found other orders give
    # twisted lines.
    size = (ori_h // scale, ori_w // scale)
    if np.random.uniform() < 0.5:
        decisions["final_order"] = "resize_sinc_jpeg"
        decisions["interp3"] = random.choice(_INTERP_MODES)
        out = F.interpolate(out, size=size, mode=decisions["interp3"])
        out = filter2D(out, sinc_kernel)
        out = _jpeg(out, jpeger, o["jpeg_range2"], decisions, "2")
    else:
        decisions["final_order"] = "jpeg_resize_sinc"
        out = _jpeg(out, jpeger, o["jpeg_range2"], decisions, "2")
        decisions["interp3"] = random.choice(_INTERP_MODES)
        out = F.interpolate(out, size=size, mode=decisions["interp3"])
        out = filter2D(out, sinc_kernel)
    keep("jpeg_sinc2", out)
    lr = quantize(out)
    keep("lr", lr)
    return Degraded(lr=lr, gt_usm=gt_usm, decisions=decisions, stages=stages)


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
    _check_kernel_options(options)
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
    return {
        key: torch.stack([item[key] for item in items])
        for key in ("kernel1", "kernel2", "sinc_kernel")
    }


def degrade(
    hr: torch.Tensor | np.ndarray | Sequence[np.ndarray],
    *,
    seed: int,
    mode: Mode = "realesrgan",
    options: Mapping[str, Any] | None = None,
    scale: int = 4,
    return_stages: bool = False,
) -> Degraded:
    """Degrade HR images as training does, reproducibly: same seed, same LR.

    ``hr`` is a ``(B, C, H, W)`` tensor in [0, 1] (any device), or gray 2-D arrays in [0, 1]
    (one, or a list of one size, made into a ``(B, 3, H, W)`` batch by :func:`gray_to_batch`).
    ``options`` defaults to :func:`degradation_options`. Kernels come from RealESRGANDataset
    and the ops from :func:`degrade_batch`, the code training runs. ``H`` and ``W`` must be
    multiples of ``scale`` and, in ``realesrgan`` mode, large enough for the 21-tap kernels
    after the smallest first resize (76 pixels for the default 0.15: reflect padding needs
    11). Each image of a batch gets its own kernels; resize, noise type and JPEG order are
    drawn once per batch, as in realesrgan.
    """
    batch = hr if isinstance(hr, torch.Tensor) else gray_to_batch(hr)
    if batch.ndim != 4:
        raise ValueError(f"hr must be (B, C, H, W) or a gray 2-D array, got {tuple(batch.shape)}.")
    h, w = batch.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"HR size {h}x{w} is not divisible by scale {scale}.")
    options = degradation_options() if options is None else options
    if mode == "realesrgan":
        min_side = _min_side(options["resize_range"][0], scale)
        if min(h, w) < min_side:
            raise ValueError(
                f"HR size {h}x{w} is too small for the two-stage degradation "
                f"(at least {min_side} pixels per side for resize_range "
                f"{options['resize_range']})."
            )
    device = batch.device
    jpeger = DiffJPEG(differentiable=False).to(device)
    usm = USMSharp().to(device)
    with seeded(seed, device), torch.no_grad():
        kernels = (
            sample_kernels(batch.shape[0], options)
            if mode == "realesrgan"
            else {
                key: torch.zeros(batch.shape[0], _KERNEL_SIZE, _KERNEL_SIZE)
                for key in ("kernel1", "kernel2", "sinc_kernel")
            }
        )
        kernels = {k: v.to(device) for k, v in kernels.items()}
        result = degrade_batch(
            batch,
            **kernels,
            options=options,
            jpeger=jpeger,
            usm_sharpener=usm,
            mode=mode,
            scale=scale,
            keep_stages=return_stages,
        )
    if mode == "realesrgan":
        # Which kernels were sinc filters, read back from the kernels themselves: realesrgan's
        # sinc (circular low-pass) kernels always have negative lobes at 7..21 taps, its
        # Gaussian-family kernels never do, and "no final sinc" is a unit pulse.
        result.decisions.update(
            kernel1_sinc=(kernels["kernel1"].flatten(1).amin(1) < 0).tolist(),
            kernel2_sinc=(kernels["kernel2"].flatten(1).amin(1) < 0).tolist(),
            final_sinc=[not _is_pulse(k) for k in kernels["sinc_kernel"]],
        )
    return result


def _min_side(min_resize: float, scale: int) -> int:
    """Smallest HR side (a multiple of ``scale``) whose resized copies take a 21-tap kernel."""
    need = _KERNEL_SIZE // 2 + 1  # reflect padding by k // 2 needs a longer side
    side = scale
    while math.floor(side * min_resize) < need or side // scale < need:
        side += scale
    return side


def _is_pulse(kernel: torch.Tensor) -> bool:
    """RealESRGANDataset's "no final sinc" kernel is a unit pulse at the centre."""
    c = kernel.shape[-1] // 2
    return bool(kernel[c, c] == 1 and kernel.abs().sum() == 1)


def gray_to_batch(images: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
    """Gray float images in [0, 1] (one 2-D array or several of one size) -> ``(B, 3, H, W)``."""
    arrays = [images] if isinstance(images, np.ndarray) and images.ndim == 2 else list(images)
    for a in arrays:
        if a.ndim != 2:
            raise ValueError(f"Expected gray 2-D images, got shape {a.shape}.")
    stacked = torch.from_numpy(np.stack([np.asarray(a, np.float32) for a in arrays]))
    return stacked[:, None].repeat(1, 3, 1, 1).contiguous()


def batch_to_gray(batch: torch.Tensor) -> np.ndarray:
    """``(B, C, H, W)`` -> ``(B, H, W)`` float32: the channel mean (colour noise averages out)."""
    return batch.detach().float().mean(dim=1).cpu().numpy()


def lr_fidelity(hr: torch.Tensor, lr: torch.Tensor, *, scale: int = 4) -> pd.DataFrame:
    """PSNR/SSIM of bicubic-upsampled LR against HR, one row per image, for a degradation table.

    Both are taken to gray (channel mean); the LR is upsampled with the study's bicubic
    (:func:`cxrsr_utils.io.resize`), clipped and rounded to 8 bits as a saved image would be.
    PSNR is ``10 log10(1 / MSE)`` on [0, 1] with :func:`cxrsr_utils.metrics.mse`; SSIM is
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


def centre_crop(image: np.ndarray, size: int, multiple: int = 1) -> np.ndarray:
    """The central square of side ``min(h, w, size)``, cut down to a multiple of ``multiple``
    (the scale, so the degraded LR has whole pixels)."""
    h, w = image.shape[:2]
    side = min(h, w, size) // multiple * multiple
    if side < 1:
        raise ValueError(f"No {multiple}-multiple square fits an image of shape {image.shape}.")
    y, x = (h - side) // 2, (w - side) // 2
    return image[y : y + side, x : x + side]


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
