"""The profile's data sections: NIH and Kermany preparation (notebook 01), Real-ESRGAN's
degradation and its preview (notebook 02).

Parts of :class:`cxrsr_utils.core.params.Params`; loaded with it by
:func:`cxrsr_utils.core.params.load_params`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from cxrsr_utils.core.params_base import NonNeg, Prob, StrictSection


class NIHParams(StrictSection):
    """NIH ChestX-ray14: patient-level fine-tune / validation / test split, Real-ESRGAN-style
    training-set augmentation, and the native-pixel evaluation pairs."""

    root: str | None = Field(None, description="data set folder; None finds it in cache/mirror")
    val_fraction: float = Field(
        0.1, gt=0, lt=1, description="share of patients for validation (checkpoint choice only)"
    )
    test_fraction: float = Field(0.2, gt=0, lt=1, description="share of patients held out")
    n_finetune: int | None = Field(
        None, ge=1, description="originals kept for fine-tuning (None: every one)"
    )
    n_val: int | None = Field(None, ge=1, description="validation images kept (None: every one)")
    n_test: int | None = Field(None, ge=1, description="held-out test images kept (None: all)")
    multiscale_originals: int = Field(
        ..., ge=0, description="originals that get multiscale copies (4 copies each)"
    )
    scales: tuple[Annotated[float, Field(gt=0, le=1)], ...] = Field(
        (0.75, 0.5, 1 / 3), min_length=1, description="Real-ESRGAN's scales, in (0, 1]"
    )
    shortest_edge: int = Field(400, ge=16, description="extra copy: shortest edge resized to this")
    n_crops: int = Field(..., ge=0, description="random crops of multiscale images, all distinct")
    crop_size: int = Field(..., ge=32, description="side of each crop (HR pixels)")
    max_side: int | None = Field(
        None, ge=64, description="fine-tune originals resized so their longer side is at most this"
    )
    eval_hr_size: int = Field(
        ..., ge=16, description="test HR: side of the centre crop of the original's native pixels"
    )
    val_hr_size: int | None = Field(
        None, ge=16, description="validation HR centre-crop side (None: eval_hr_size)"
    )

    @model_validator(mode="after")
    def _room_for_finetuning(self) -> NIHParams:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                "nih.val_fraction + nih.test_fraction must leave patients for fine-tuning "
                f"(sum < 1), got {self.val_fraction} + {self.test_fraction}"
            )
        return self

    @property
    def val_side(self) -> int:
        """The validation HR's side: ``val_hr_size``, or ``eval_hr_size`` when not given."""
        return self.eval_hr_size if self.val_hr_size is None else self.val_hr_size


class KermanyParams(StrictSection):
    """Kermany pneumonia set: the images, patient-grouped cross-validation folds, HR/LR pairs."""

    root: str | None = None
    n_per_class: int | None = Field(
        None, ge=2, description="NORMAL and PNEUMONIA images each (None: every usable image)"
    )
    folds: int = Field(
        5, ge=3, description="patient-grouped, class-stratified CV folds (test, validation, train)"
    )
    hr_size: int = Field(
        ..., ge=16, description="HR square side (the whole image resampled; the CNN squashes it)"
    )


_KERNELS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
_KERNEL_P = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)


class DegradationParams(StrictSection):
    """Real-ESRGAN's two-stage degradation; key names are realesrgan's (``degradation_options``).

    Defaults: the paper's values for stage 1 and 2, Real-ESRGAN's finetune options for the rest.
    """

    resize_prob: tuple[Prob, Prob, Prob] = (0.2, 0.7, 0.1)
    resize_range: tuple[NonNeg, NonNeg] = (0.15, 1.5)
    gaussian_noise_prob: Prob = 0.5
    noise_range: tuple[NonNeg, NonNeg] = (1, 30)
    poisson_scale_range: tuple[NonNeg, NonNeg] = (0.05, 3)
    gray_noise_prob: Prob = 0.4
    jpeg_range: tuple[NonNeg, NonNeg] = (30, 95)
    second_blur_prob: Prob = 0.8
    resize_prob2: tuple[Prob, Prob, Prob] = (0.3, 0.4, 0.3)
    resize_range2: tuple[NonNeg, NonNeg] = (0.3, 1.2)
    gaussian_noise_prob2: Prob = 0.5
    noise_range2: tuple[NonNeg, NonNeg] = (1, 25)
    poisson_scale_range2: tuple[NonNeg, NonNeg] = (0.05, 2.5)
    gray_noise_prob2: Prob = 0.4
    jpeg_range2: tuple[NonNeg, NonNeg] = (30, 95)
    blur_kernel_size: int = Field(21, ge=3)
    kernel_list: tuple[str, ...] = _KERNELS
    kernel_prob: tuple[Prob, ...] = _KERNEL_P
    sinc_prob: Prob = 0.1
    blur_sigma: tuple[NonNeg, NonNeg] = (0.2, 3)
    betag_range: tuple[NonNeg, NonNeg] = (0.5, 4)
    betap_range: tuple[NonNeg, NonNeg] = (1, 2)
    blur_kernel_size2: int = Field(21, ge=3)
    kernel_list2: tuple[str, ...] = _KERNELS
    kernel_prob2: tuple[Prob, ...] = _KERNEL_P
    sinc_prob2: Prob = 0.1
    blur_sigma2: tuple[NonNeg, NonNeg] = (0.2, 1.5)
    betag_range2: tuple[NonNeg, NonNeg] = (0.5, 4)
    betap_range2: tuple[NonNeg, NonNeg] = (1, 2)
    final_sinc_prob: Prob = 0.8
    l1_gt_usm: bool = True
    percep_gt_usm: bool = True
    gan_gt_usm: bool = False

    @model_validator(mode="after")
    def _ranges_and_sums(self) -> DegradationParams:
        for name, value in self:
            if name.endswith(("_range", "_range2")) or name.startswith("blur_sigma"):
                if value[0] > value[1]:
                    raise ValueError(f"degradation.{name} must be (low, high), got {value}")
            if name.startswith(("resize_prob", "kernel_prob")) and abs(sum(value) - 1) > 1e-6:
                raise ValueError(f"degradation.{name} must sum to 1, got {value}")
        for suffix in ("", "2"):
            kernels, probs = (
                getattr(self, f"kernel_list{suffix}"),
                getattr(self, f"kernel_prob{suffix}"),
            )
            if len(kernels) != len(probs):
                raise ValueError(
                    f"degradation.kernel_list{suffix} and kernel_prob{suffix} "
                    "must have the same length"
                )
        return self


class PreviewParams(StrictSection):
    """Notebook 02's degradation preview."""

    hr_size: int = Field(256, ge=80, description="HR crop side for the figures")
    n_draws: int = Field(16, ge=1, description="random degradations of one image in the grid")
    n_images: int = Field(8, ge=1, description="images for the degradation-strength table")
    draws_per_image: int = Field(4, ge=1)
