"""The study's parameters: one pydantic schema, YAML profiles under ``params/``, overrides.

A profile is ``params/<name>.yaml`` (or any YAML path). Overrides are a nested dict merged on
top (``{"nih": {"n_crops": 4}}``) or dotted keys (``{"nih.n_crops": 4}``). Unknown or
mistyped keys are errors that list the valid keys at that level.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cxrsr_utils.core.layout import StudyLayout

ENV_ROOT = "CXRSR_ROOT"
ENV_OUTPUT_ROOT = "CXRSR_OUTPUT_ROOT"


def is_checkout(folder: Path) -> bool:
    """Whether ``folder`` is a study checkout: it holds the profiles and the notebooks."""
    return (folder / "params").is_dir() and (folder / "notebooks").is_dir()


def find_project_root(package: Path | None = None, cwd: Path | None = None) -> Path:
    """The study checkout whose profiles, notebooks and ``work/`` the study uses.

    ``$CXRSR_ROOT`` if set; else the folder above the package when that is a checkout (an
    editable install, or the package imported from the checkout); else the nearest checkout at
    or above the working folder (``pip install .`` copies only the package into
    site-packages, and the notebooks run from the checkout's ``notebooks/``). Installed
    without any checkout (``cxrsr upscale`` alone) it is the folder above the package.
    """
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env).expanduser().resolve()
    # This file is cxrsr_utils/core/params.py: the package is two folders up.
    above_package = (package or Path(__file__).resolve().parents[1]).parent
    if is_checkout(above_package):
        return above_package
    here = (cwd or Path.cwd()).resolve()
    return next((f for f in (here, *here.parents) if is_checkout(f)), above_package)


PROJECT_ROOT = find_project_root()
PARAMS_DIR = PROJECT_ROOT / "params"


# Bounded types: a probability, a positive number, a positive range (lo <= hi checked below).
Prob = Annotated[float, Field(ge=0, le=1)]
Pos = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]
PROFILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class ParamsError(ValueError):
    """A profile or override is invalid; the message says which key and what is allowed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NIHParams(_Strict):
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


class KermanyParams(_Strict):
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


class DegradationParams(_Strict):
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


class PreviewParams(_Strict):
    """Notebook 02's degradation preview."""

    hr_size: int = Field(256, ge=80, description="HR crop side for the figures")
    n_draws: int = Field(16, ge=1, description="random degradations of one image in the grid")
    n_images: int = Field(8, ge=1, description="images for the degradation-strength table")
    draws_per_image: int = Field(4, ge=1)


# A speed switch is on, off, or "auto": on a GPU only (see cxrsr_utils.finetune.speed).
SpeedSwitch = bool | Literal["auto"]
# FinetuneParams' machine-level speed settings: they change how fast fine-tuning runs, not its
# recipe (results differ only by floating-point rounding), so neither Params.digest nor the
# options digest holds them (a run may be resumed or recognised as done with them toggled).
SPEED_SWITCHES = ("channels_last", "compile", "cudnn_benchmark")
# EvaluateParams' speed settings, left out of Params.digest for the same reason.
EVALUATE_SPEED_SWITCHES = ("channels_last",)


class FinetuneParams(_Strict):
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


class EvaluateParams(_Strict):
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


class ClassifierParams(_Strict):
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


class Params(_Strict):
    """All parameters of one run of the study."""

    profile: str = Field(..., pattern=PROFILE_NAME, description="names work/<profile>/")
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    scale: Literal[4] = 4
    nih: NIHParams
    kermany: KermanyParams
    degradation: DegradationParams = DegradationParams()
    preview: PreviewParams = PreviewParams()
    finetune: FinetuneParams
    evaluate: EvaluateParams = EvaluateParams()
    classifier: ClassifierParams

    @model_validator(mode="after")
    def _hr_divisible(self) -> Params:
        for name, size in (
            ("nih.eval_hr_size", self.nih.eval_hr_size),
            ("nih.val_hr_size", self.nih.val_side),
            ("kermany.hr_size", self.kermany.hr_size),
        ):
            if size % self.scale:
                raise ValueError(f"{name}={size} must be divisible by scale {self.scale}")
        return self

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of these parameters, without the speed switches
        (:data:`SPEED_SWITCHES`, :data:`EVALUATE_SPEED_SWITCHES`): they do not change what a
        run computes, only its floating-point rounding."""
        values = self.model_dump(
            mode="json",
            exclude={
                "finetune": set(SPEED_SWITCHES),
                "evaluate": set(EVALUATE_SPEED_SWITCHES),
            },
        )
        blob = json.dumps(values, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _undot(overrides: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys to nested dicts; a key reached twice (``a.b`` and ``a: {b}``) is an error."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        parts = str(key).split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ParamsError(f"{prefix}{key}: {part} is given both as a value and a mapping.")
        if isinstance(value, dict):
            value = _undot(value, f"{prefix}{key}.")
        if isinstance(node.get(parts[-1]), dict) and isinstance(value, dict):
            _refuse_overlap(node[parts[-1]], value, f"{prefix}{key}.")
            node[parts[-1]] = _deep_merge(node[parts[-1]], value)
        elif parts[-1] in node:
            raise ParamsError(f"{prefix}{key} is given twice; give each key once.")
        else:
            node[parts[-1]] = value
    return nested


def _refuse_overlap(a: dict[str, Any], b: dict[str, Any], prefix: str) -> None:
    for key in a.keys() & b.keys():
        if isinstance(a[key], dict) and isinstance(b[key], dict):
            _refuse_overlap(a[key], b[key], f"{prefix}{key}.")
        else:
            raise ParamsError(f"{prefix}{key} is given twice; give each key once.")


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise ParamsError(
                f"key {key!r} is given twice (line {key_node.start_mark.line + 1}); give it once."
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["nih.n_crops=4", ...]`` (the command line's ``--set``) to an overrides dict.

    Values are YAML (``4`` is an int, ``[a, b]`` a list); a key given twice is an error.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParamsError(f"--set takes key=value (dotted keys allowed), got {item!r}")
        if key in out:
            raise ParamsError(f"--set {key} is given twice; give each key once.")
        try:
            out[key] = yaml.load(value, Loader=_UniqueKeyLoader)
        except yaml.YAMLError as exc:
            raise ParamsError(f"--set {item!r}: the value is not valid YAML ({exc}).") from exc
    return out


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel]:
    model: type[BaseModel] = Params
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            break
    return model


def _explain(err: ValidationError, origin: str) -> ParamsError:
    lines = [f"Invalid parameters in {origin}:"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "<top>"
        if e["type"] == "extra_forbidden":
            valid = ", ".join(sorted(_model_at(tuple(e["loc"][:-1])).model_fields))
            lines.append(f"  unknown key {where!r}; valid keys here: {valid}")
        else:
            lines.append(f"  {where}: {e['msg']} (got {e.get('input')!r})")
    return ParamsError("\n".join(lines))


def profile_path(profile: str | os.PathLike[str]) -> Path:
    """The YAML file of a profile name (``quick``) or path."""
    path = Path(profile)
    if path.suffix in {".yaml", ".yml"}:
        return path
    if not re.match(PROFILE_NAME, str(profile)) or ".." in str(profile):
        raise ParamsError(
            f"Profile name {str(profile)!r} may hold only letters, digits, '_', '-' and '.' (it "
            "names the folder work/<profile>/); give a YAML path for a profile elsewhere."
        )
    candidate = PARAMS_DIR / f"{profile}.yaml"
    if not candidate.is_file():
        known = ", ".join(sorted(p.stem for p in PARAMS_DIR.glob("*.yaml")))
        raise ParamsError(f"No profile {profile!r} in {PARAMS_DIR}; known profiles: {known}.")
    return candidate


def load_params(
    profile: str | os.PathLike[str] = "quick", overrides: dict[str, Any] | None = None
) -> Params:
    """Load a profile and apply overrides; raises :class:`ParamsError` on any bad key/value."""
    path = profile_path(profile)
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except (OSError, yaml.YAMLError, ParamsError) as exc:
        raise ParamsError(f"Cannot read profile {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ParamsError(f"Profile {path} must be a mapping of keys to values.")
    raw.setdefault("profile", path.stem)
    merged = _deep_merge(_undot(raw), _undot(overrides or {}))
    try:
        return Params.model_validate(merged)
    except ValidationError as err:
        origin = f"{path}" + (f" with overrides {overrides}" if overrides else "")
        raise _explain(err, origin) from None


class Paths(StudyLayout):
    """Where a run writes: its own git-ignored folder ``work/<profile>/``, laid out as
    :class:`~cxrsr_utils.core.layout.StudyLayout` says (the folders are made here).

    It holds the prepared data, checkpoints and SR outputs, ``reports/`` (executed notebooks,
    ``tables/``, manifests, model cards) and ``figures/``, so running the study never changes
    a tracked file. The results committed with the code live in ``reports/<profile>/`` and
    ``figures/<profile>/`` (:func:`cxrsr_utils.reporting.reference.reference_dirs`); a run is
    compared
    with them and replaces them only when published. Everything sits under the project root,
    or under ``$CXRSR_OUTPUT_ROOT`` when set (the tests use a scratch folder).
    """

    def __init__(self, params: Params, root: Path | None = None) -> None:
        env = os.environ.get(ENV_OUTPUT_ROOT)
        self.root = Path(root or env or PROJECT_ROOT)
        super().__init__(self.root / "work" / params.profile)
        for folder in (self.reports, self.tables, self.figures, self.work):
            folder.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"Paths(root={self.root})"
