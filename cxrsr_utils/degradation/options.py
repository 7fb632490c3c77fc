"""The degradation's settings: realesrgan's option keys, the paper's defaults, and their checks.

:func:`degradation_options` turns :class:`cxrsr_utils.core.params_data.DegradationParams`
(the one place that holds the values) into the flat dict realesrgan reads, with its key names,
and refuses values realesrgan would silently misuse. The keys fall in two groups, because a
basicsr option file puts them in two places: :data:`KERNEL_KEYS` under ``datasets.train`` (read by
``RealESRGANDataset``, see :mod:`cxrsr_utils.degradation.kernels`) and :data:`PIPELINE_KEYS` at
the top level (read by the model's ``feed_data``, see
:func:`cxrsr_utils.degradation.pipeline.degrade_batch`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from cxrsr_utils.core.params_data import DegradationParams

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

# realesrgan hard-codes this: blur kernels are 7..21 wide and padded to 21.
KERNEL_SIZE = 21


def degradation_options(**overrides: Any) -> dict[str, Any]:
    """The degradation settings as a flat dict with realesrgan's key names.

    Defaults come from :class:`cxrsr_utils.core.params_data.DegradationParams`, the one place that
    holds the paper's values (stage 1 resize up/down/keep 0.2/0.7/0.1 over [0.15, 1.5], ...) and
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
    check_pipeline_options(opts)
    check_kernel_options(opts)
    return opts


def _require(opts: Mapping[str, Any], keys: Sequence[str]) -> None:
    missing = [k for k in keys if k not in opts]
    if missing:
        raise ValueError(
            f"Degradation options lack {', '.join(missing)}; build them with degradation_options()."
        )


def check_pipeline_options(opts: Mapping[str, Any]) -> None:
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


def check_kernel_options(opts: Mapping[str, Any]) -> None:
    """Check the keys RealESRGANDataset reads (``datasets.train`` of a basicsr option dict)."""
    _require(opts, KERNEL_KEYS)
    for key in ("kernel_prob", "kernel_prob2"):
        list_key = key.replace("prob", "list")
        if len(opts[key]) != len(opts[list_key]):
            raise ValueError(
                f"{key} has {len(opts[key])} entries but {list_key} has {len(opts[list_key])}."
            )
    for key in ("blur_kernel_size", "blur_kernel_size2"):
        if opts[key] != KERNEL_SIZE:
            # realesrgan pads every kernel to 21 no matter what the option says.
            raise ValueError(f"{key} must be {KERNEL_SIZE}: realesrgan hard-codes 21x21 kernels.")
    _check_probabilities(opts, ("sinc_prob", "sinc_prob2", "final_sinc_prob"))


def _check_probabilities(opts: Mapping[str, Any], keys: Sequence[str]) -> None:
    for key in keys:
        if not 0 <= opts[key] <= 1:
            raise ValueError(f"{key} must be a probability in [0, 1], got {opts[key]}.")
