"""The profile's network sections: fine-tuning (notebook 03), SR evaluation and its statistics
plan (notebook 04), the reference classifier (notebook 05).

Parts of :class:`cxrsr_utils.core.params.Params`; loaded with it by
:func:`cxrsr_utils.core.params.load_params`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from cxrsr_utils.core.params_base import NonNeg, Pos, StrictSection

# A speed switch is on, off, or "auto": on a GPU only (see cxrsr_utils.finetune.speed).
SpeedSwitch = bool | Literal["auto"]
# FinetuneParams' machine-level speed settings: they change how fast fine-tuning runs, not its
# recipe (results differ only by floating-point rounding), so neither Params.digest nor the
# options digest holds them (a run may be resumed or recognised as done with them toggled).
SPEED_SWITCHES = ("channels_last", "compile", "cudnn_benchmark")
# EvaluateParams' speed settings, left out of Params.digest for the same reason.
EVALUATE_SPEED_SWITCHES = ("channels_last",)


class FinetuneParams(StrictSection):
    """Notebook 03: basicsr/realesrgan fine-tuning; the defaults are the paper's protocol.

    :func:`cxrsr_utils.finetune.options.build_options` turns these into basicsr options.
    """

    variants: tuple[Literal["paper", "matched", "l1", "matched_l1"], ...] = Field(
        ("paper",), min_length=1
    )
    total_iter: int | None = Field(None, ge=1, description="iterations (or give epochs)")
    epochs: int | None = Field(None, ge=1, description="epochs over the fine-tune set")
    batch_size: int = Field(10, ge=1)
    gt_size: int = Field(256, ge=32)
    lr_g: Pos = 1e-4
    lr_d: Pos = 1e-4
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (
        0.9,
        0.99,
    )
    pixel_weight: NonNeg = 1.0
    perceptual_weight: NonNeg = 1.0
    gan_weight: NonNeg = 0.1
    ema_decay: float = Field(0.999, ge=0, lt=1, description="EMA of the generator, in [0, 1)")
    generator_init: Literal["pretrained", "scratch"] = "pretrained"
    discriminator_init: Literal["pretrained", "scratch"] = "pretrained"
    net_d_init_iters: int = Field(0, ge=0, description="D-only warm-up (D from scratch)")
    queue_size: int = Field(180, ge=1)
    num_workers: int = Field(0, ge=0)
    save_checkpoint_freq: int = Field(500, ge=1)
    print_freq: int = Field(100, ge=1)
    val_freq: int = Field(
        500, ge=1, description="iterations between validation points (and at the last one)"
    )
    val_images: int | None = Field(
        None, ge=1, description="validation pairs scored (the first N by name; None: all)"
    )
    checkpoint: Literal["best_val", "last"] = Field(
        "best_val",
        description="generator exported: best validation PSNR (EMA), or the last iteration's",
    )
    autocast: Literal["auto", "bf16"] | None = Field(
        None, description="bf16 autocast; auto: only where the CPU has native bf16 (or on a GPU)"
    )
    gpus: int = Field(1, ge=1, description="processes for the torchrun command notebook 03 shows")
    # Speed switches (SPEED_SWITCHES): how fast a step runs on this machine, not what it trains.
    channels_last: SpeedSwitch = Field(
        False, description="channels_last memory format for the networks and their inputs"
    )
    compile: SpeedSwitch = Field(
        False, description="torch.compile the generator, discriminator and VGG19 (not the EMA)"
    )
    cudnn_benchmark: SpeedSwitch = Field(
        False, description="torch.backends.cudnn.benchmark (GPU only; more GPU memory)"
    )

    @model_validator(mode="after")
    def _one_length(self) -> FinetuneParams:
        if (self.total_iter is None) == (self.epochs is None):
            raise ValueError("give exactly one of finetune.total_iter and finetune.epochs")
        return self


# What notebook 04's statistics plan may name: a baseline method and a per-image metric.
SRBaseline = Literal["bicubic", "lanczos", "pretrained"]
SRMetric = Literal["psnr", "ssim", "mse", "lr_psnr"]
Fraction = Annotated[float, Field(ge=0, lt=1)]
ZoomBox = tuple[Fraction, Fraction, Annotated[float, Field(gt=0, le=1)]]
# A lung field in each data set's HR (x, y, side as fractions): NIH, the patient's right lung
# beside the heart in a 512 centre crop of a 1024 original; Kermany, the right upper-middle
# lung of the whole chest.
ZOOM_BOXES = {"nih": (0.05, 0.2, 0.3), "kermany": (0.18, 0.3, 0.25)}


class EvaluateParams(StrictSection):
    """SR evaluation (notebook 04): inference settings and statistics."""

    tile: int = Field(0, ge=0, description="tile core side in LR pixels (0: whole image)")
    tile_pad: int = Field(10, ge=0)
    pre_pad: int = Field(10, ge=0)
    batch_size: int = Field(4, ge=1, description="LR inputs of one shape per forward pass")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "fp32", description="auto: bf16 where the CPU has native bf16 (or on a GPU), else fp32"
    )
    channels_last: bool = Field(
        False,
        description="run the networks in channels_last (NHWC): faster, other rounding (speed only)",
    )
    include_general_v3: bool = Field(True, description="also realesr-general-x4v3 if it resolves")
    n_bootstrap: int = Field(2000, ge=100, description="bootstrap resamples of every CI")
    confidence: float = Field(0.95, gt=0, lt=1, description="level of every CI")
    # The statistics plan, declared here before any result (cxrsr_utils.evaluation.comparisons): the
    # primary comparison is the fine-tuned variant chosen on validation against
    # primary_baseline, on one metric, data set and condition; every network method against
    # each secondary baseline, on each secondary metric, data set and condition, is secondary.
    primary_baseline: SRBaseline = Field(
        "lanczos", description="the method the validation-chosen variant is tested against"
    )
    primary_metric: SRMetric = Field("psnr", description="metric of the primary comparison")
    primary_dataset: Literal["nih", "kermany"] = Field(
        "nih", description="data set of the primary comparison (nih: the held-out test split)"
    )
    primary_condition: Literal["bicubic", "degraded"] = Field(
        "bicubic", description="evaluation condition (layout.EVAL_CONDITIONS) of the primary"
    )
    secondary_baselines: tuple[SRBaseline, ...] = Field(
        ("lanczos", "bicubic"), min_length=1, description="each network method is tested vs these"
    )
    secondary_metrics: tuple[SRMetric, ...] = Field(
        ("psnr", "ssim"), min_length=1, description="metrics of the secondary comparisons"
    )
    alpha: float = Field(
        0.05, gt=0, lt=1, description="family-wise error rate (Holm, secondary comparisons)"
    )
    zoom_boxes: dict[str, ZoomBox] = Field(
        ZOOM_BOXES,
        description="zoom figure's box per data set: x, y, side as fractions of the HR image, "
        "in a lung field (see ZOOM_BOXES)",
    )

    @field_validator("zoom_boxes", mode="before")
    @classmethod
    def _default_boxes(cls, value: Any) -> Any:
        # A profile that moves one data set's box keeps the other's default.
        return {**ZOOM_BOXES, **value} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _boxes_inside(self) -> EvaluateParams:
        if set(self.zoom_boxes) != set(ZOOM_BOXES):
            raise ValueError(f"evaluate.zoom_boxes takes a box for {' and '.join(ZOOM_BOXES)}")
        for dataset, (x, y, side) in self.zoom_boxes.items():
            if x + side > 1 or y + side > 1:
                raise ValueError(
                    f"evaluate.zoom_boxes.{dataset}: x + side and y + side must be <= 1"
                )
        return self


class ClassifierParams(StrictSection):
    """The reference Keras CNN (notebook 05)."""

    model_path: str | None = Field(
        None, description="an existing .keras/.h5 classifier to evaluate instead of training"
    )
    image_size: int = Field(300, ge=94, description="square input side (reference: 300)")
    epochs: int = Field(
        ..., ge=1, description="the most epochs per fold (early stopping may stop sooner)"
    )
    patience: int | None = Field(
        5,
        ge=1,
        description="epochs without a lower validation loss before a fold stops (its best "
        "epoch's weights kept); None: train all epochs, keep the last",
    )
    min_epochs: int = Field(
        10,
        ge=0,
        description="warm-up epochs early stopping ignores (the CNN sits at chance loss first)",
    )
    batch_size: int = Field(..., ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    shear_degrees: float = Field(0.2, ge=0, description="ImageDataGenerator shear_range (deg)")
    zoom: float = Field(0.2, ge=0, lt=1)
    horizontal_flip: bool = True
    cv: bool = Field(
        True,
        description="train every fold's model (every image predicted out of fold); False: "
        "fold 0's only (test fold 0, validation fold 1), a smoke run",
    )
    threshold: float = Field(
        0.5, gt=0, lt=1, description="declared P(PNEUMONIA) cut-off, never tuned"
    )
    n_bootstrap: int = Field(1000, ge=100)
    confidence: float = Field(0.95, gt=0, lt=1)
    equivalence_margin: float = Field(
        0.05, gt=0, lt=1, description="TOST margin: |AUC(form) - AUC(original)| called negligible"
    )
    equivalence_alpha: float = Field(
        0.05, gt=0, lt=0.5, description="TOST level (equivalent iff the 1-2α CI is in ±margin)"
    )

    @model_validator(mode="after")
    def _warm_up_shorter(self) -> ClassifierParams:
        if self.patience is not None and self.min_epochs >= self.epochs:
            raise ValueError(
                f"classifier.min_epochs ({self.min_epochs}) must be below classifier.epochs "
                f"({self.epochs}): early stopping would never be allowed to act"
            )
        return self
