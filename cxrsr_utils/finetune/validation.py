"""Validation during fine-tuning: the learning curve and the checkpoint chosen on it.

Every ``finetune.val_freq`` iterations and at the last one, the generator being trained (the
EMA generator, the one that is exported) super-resolves the NIH *validation* pairs
(``data/nih/val/{hr,lr}``, the bicubic x4 LR for every variant, blind or matched) and is scored
as notebook 04 scores the test pairs: :class:`cxrsr_utils.sr.upscaler.Model` with the profile's
inference settings, the output rounded to the HR's integer pixels (notebook 04 writes and
reads back a PNG), then :func:`cxrsr_utils.stats.image_metrics.psnr` against the HR; the point is
the mean
over the images. Only the two validation folders named in the options are ever read.

``finetune.checkpoint`` says which generator is exported, declared before training:
``best_val`` (the EMA generator at the validation point with the highest PSNR; ties keep the
earlier one) or ``last``. With ``best_val`` the best generator so far is kept on disk
(``<experiments>/best_val/net_g_ema_<iter>.pth``, written atomically) when validation
improves. The curve and the best point so far travel in every training checkpoint
(:meth:`Validator.state`), so a resumed run continues the same curve and still knows which
file holds its best generator; the CSV ``validation_log.csv`` (iter, val_psnr, seconds,
elapsed_s) is cut back to the checkpoint on resume, as the loss log is.

Validation reads the weights and never changes them, nor any random state, so a run's
training trajectory is the same with or without it: the options digest leaves the validation
settings out and the run identity names them separately (:func:`validation_digest`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxrsr_utils.core.atomic import atomic_path
from cxrsr_utils.core.errors import MissingStepError
from cxrsr_utils.external import sources
from cxrsr_utils.finetune import checkpoints
from cxrsr_utils.finetune.inference_settings import VALIDATION_INFER_KEYS, infer_options
from cxrsr_utils.finetune.model_card import ValidationRecord
from cxrsr_utils.images import radiographs
from cxrsr_utils.sr import infer
from cxrsr_utils.stats import image_metrics as metrics

VALIDATION_OPTION = "validation"  # the key under opt["cxrsr"]
VALIDATION_LOG = "validation_log.csv"
VALIDATION_COLUMNS = ("iter", "val_psnr", "seconds", "elapsed_s")
BEST_FOLDER = "best_val"
CHECKPOINT_RULES = ("best_val", "last")
# The backend of a validation pass: torch, not the CPU's fastest, because the weights change
# at every validation point and converting RRDBNet for OpenVINO (~10 s) costs more than a
# validation pass saves.
VALIDATION_BACKEND = "torch"


def validation_options(
    hr_dir: str | os.PathLike[str],
    lr_dir: str | os.PathLike[str],
    *,
    freq: int,
    checkpoint: str,
    infer_options: Mapping[str, Any] | None = None,
    max_images: int | None = None,
) -> dict[str, Any]:
    """The validation settings of a run (``opt["cxrsr"]["validation"]``).

    ``hr_dir`` / ``lr_dir`` hold the validation pairs, one file name in both (gray images);
    ``freq`` is the iterations between validation points, ``checkpoint`` the export rule
    (``best_val`` or ``last``), ``infer_options`` the inference settings (keys of
    :data:`~cxrsr_utils.finetune.inference_settings.VALIDATION_INFER_KEYS`;
    :class:`~cxrsr_utils.sr.infer.InferOptions`' defaults otherwise);
    ``max_images`` keeps the first pairs by name (None: all). The pairs are listed and hashed
    now (names and SHA-256 of every file), so the run's identity
    says which validation images chose its checkpoint.
    """
    if checkpoint not in CHECKPOINT_RULES:
        raise ValueError(f"checkpoint must be one of {CHECKPOINT_RULES}, got {checkpoint!r}.")
    if freq < 1:
        raise ValueError(f"freq must be at least 1, got {freq}.")
    hr, lr = Path(hr_dir).resolve(), Path(lr_dir).resolve()
    images = pair_names(hr, lr)[:max_images]
    digest = hashlib.sha256()
    for name in images:
        digest.update(f"{name}\0{sources.sha256_file(hr / name)}\0".encode())
        digest.update(f"{sources.sha256_file(lr / name)}\n".encode())
    chosen = dict(infer_options or {})
    defaults = infer.InferOptions()
    return {
        "freq": int(freq),
        "checkpoint": checkpoint,
        "hr": str(hr),
        "lr": str(lr),
        "images": images,
        "pairs_sha256": digest.hexdigest(),
        "infer": {k: chosen.get(k, getattr(defaults, k)) for k in VALIDATION_INFER_KEYS},
    }


def pair_names(hr_dir: Path, lr_dir: Path) -> list[str]:
    """The validation pairs' file names (relative, sorted): every HR file must have its LR."""
    if not hr_dir.is_dir():
        raise MissingStepError(
            f"No validation pairs at {hr_dir}: run notebook 01 (data preparation), which writes "
            "the NIH validation split."
        )
    names = sorted(
        p.relative_to(hr_dir).as_posix()
        for p in hr_dir.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )
    if not names:
        raise MissingStepError(f"{hr_dir} holds no validation images; run notebook 01.")
    missing = [n for n in names if not (lr_dir / n).is_file()]
    if missing:
        raise MissingStepError(
            f"{len(missing)} validation HR image(s) lack their LR in {lr_dir} "
            f"(first: {missing[0]}); run notebook 01 again."
        )
    return names


def validation_digest(opt: Mapping[str, Any]) -> str | None:
    """SHA-256 of a run's validation settings without their folders (None: no validation).

    It joins the run identity: the rule and the pairs decide which generator is exported,
    while the options digest names only what is trained.
    """
    settings = opt["cxrsr"].get(VALIDATION_OPTION)
    if not settings:
        return None
    recipe = {k: v for k, v in settings.items() if k not in ("hr", "lr")}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def validation_due(opt: Mapping[str, Any], it: int, total: int) -> bool:
    """Is iteration ``it`` of ``total`` a validation point of the run ``opt``?"""
    settings = opt["cxrsr"].get(VALIDATION_OPTION)
    return bool(settings) and (it % settings["freq"] == 0 or it == total)


@dataclass(frozen=True)
class ValidationPair:
    """One validation image: its name, LR input (float in [0, 1]) and HR ground truth."""

    name: str
    lr: np.ndarray
    hr: np.ndarray
    max_value: int


def load_pairs(settings: Mapping[str, Any]) -> list[ValidationPair]:
    """The pairs of :func:`validation_options`' ``settings``, read once (only these files)."""
    hr_dir, lr_dir = Path(settings["hr"]), Path(settings["lr"])
    pairs = []
    for name in settings["images"]:
        hr = radiographs.read_radiograph(hr_dir / name)
        lr = radiographs.read_radiograph(lr_dir / name)
        pairs.append(ValidationPair(name, lr.as_float(), hr.as_float(), hr.max_value))
    return pairs


def pair_psnr(upscale: Any, pair: ValidationPair) -> float:
    """PSNR (dB) of ``upscale(pair.lr)`` against the HR, the output first rounded to the HR's
    integer pixels as notebook 04's PNG is."""
    sr = upscale(pair.lr)
    sr = radiographs.to_pixels(sr, pair.max_value).astype(np.float32) / float(pair.max_value)
    return metrics.psnr(sr, pair.hr, data_range=1.0)


def mean_psnr(upscale: Any, pairs: Sequence[ValidationPair]) -> float:
    """The validation PSNR: the mean of :func:`pair_psnr` over ``pairs`` (dB)."""
    return float(np.mean([pair_psnr(upscale, p) for p in pairs]))


def validation_infer_options(settings: Mapping[str, Any], device: str) -> infer.InferOptions:
    """The :class:`~cxrsr_utils.sr.infer.InferOptions` of a validation pass on ``device``:
    the settings' ``infer`` values, on :data:`VALIDATION_BACKEND`."""
    return infer_options(settings["infer"], device, backend=VALIDATION_BACKEND)


def network_psnr(
    net: torch.nn.Module, pairs: Sequence[ValidationPair], options: infer.InferOptions
) -> float:
    """Validation PSNR of a generator, run as ``cxrsr upscale`` and notebook 04 run it."""
    from cxrsr_utils.sr.upscaler import load_model

    return mean_psnr(load_model(net, options).upscale_float, pairs)


REFERENCE_METHODS = ("bicubic", "lanczos", "pretrained")


def reference_psnr(
    settings: Mapping[str, Any],
    device: str = "cpu",
    methods: Sequence[str] = REFERENCE_METHODS,
) -> dict[str, float]:
    """Validation PSNR (dB) of reference methods on the same pairs, scored the same way: the
    resize baselines and the pretrained x4plus (every variant's start), by their
    :func:`cxrsr_utils.sr.upscaler.load_model` names."""
    from cxrsr_utils.sr.upscaler import load_model

    pairs = load_pairs(settings)
    options = validation_infer_options(settings, device)
    return {m: mean_psnr(load_model(m, options).upscale_float, pairs) for m in methods}


@dataclass
class ValidationState:
    """The curve so far (``[[iter, psnr], ...]``) and its best point (None before the first)."""

    curve: list[list[float]] = field(default_factory=list)
    best_iter: int | None = None
    best_psnr: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"curve": self.curve, "best_iter": self.best_iter, "best_psnr": self.best_psnr}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> ValidationState:
        if not d:
            return cls()
        return cls([[int(i), float(p)] for i, p in d["curve"]], d["best_iter"], d["best_psnr"])

    def add(self, it: int, psnr: float) -> bool:
        """Add a point; True when it is a new best (strictly higher: ties keep the earlier)."""
        self.curve.append([it, psnr])
        if self.best_psnr is None or psnr > self.best_psnr:
            self.best_iter, self.best_psnr = it, psnr
            return True
        return False


@dataclass(frozen=True)
class Choice:
    """The exported generator: chosen by ``rule`` at ``iteration``, its validation PSNR, and
    the file holding its weights (None: the network as it is at the end)."""

    rule: str
    iteration: int
    psnr: float | None
    weights: Path | None
    curve: tuple[tuple[int, float], ...] = ()

    def record(self) -> ValidationRecord:
        """The model card's validation record: the rule, the chosen iteration, its validation
        PSNR (dB; None when not validated) and the whole curve."""
        curve = tuple((int(i), float(p)) for i, p in self.curve)
        return ValidationRecord(self.rule, self.iteration, self.psnr, curve)


class Validator:
    """Validation of one run (rank 0): when it is due, the pass, the log, the best file."""

    def __init__(self, settings: Mapping[str, Any], root: Path, device: str) -> None:
        self.settings = dict(settings)
        self.root = root
        self.rule = settings["checkpoint"]
        self.options = validation_infer_options(settings, device)
        self.pairs = load_pairs(settings)
        self.state = ValidationState()

    @property
    def log_path(self) -> Path:
        return self.root / VALIDATION_LOG

    @property
    def best_folder(self) -> Path:
        return self.root / BEST_FOLDER

    def best_file(self, it: int) -> Path:
        return self.best_folder / f"net_g_ema_{it}.pth"

    def start(self, saved: Mapping[str, Any] | None, start_iter: int) -> None:
        """Begin at ``start_iter``: afresh (0), or with the curve a checkpoint carried."""
        self.state = ValidationState.from_dict(saved if start_iter else None)
        kept: list[dict[str, str]] = []
        if start_iter and self.log_path.is_file():
            with open(self.log_path, newline="") as f:
                kept = [r for r in csv.DictReader(f) if int(r["iter"]) <= start_iter]
        with atomic_path(self.log_path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, VALIDATION_COLUMNS)
            writer.writeheader()
            writer.writerows({k: r.get(k, "") for k in VALIDATION_COLUMNS} for r in kept)
        if self.rule == "best_val" and self.state.best_iter is not None:
            best = self.best_file(self.state.best_iter)
            if not best.is_file():
                raise checkpoints.CheckpointError(
                    f"The checkpoint at iteration {start_iter} names the best-validation "
                    f"generator {best}, which is missing; delete {self.root} to start over."
                )
        self.prune()

    def validate(self, net: torch.nn.Module, it: int, elapsed_s: float) -> float:
        """One validation pass of ``net`` at iteration ``it``: log it, keep a new best."""
        tic = time.perf_counter()
        psnr = network_psnr(net, self.pairs, self.options)
        seconds = time.perf_counter() - tic
        improved = self.state.add(it, psnr)
        if improved and self.rule == "best_val":
            # Written (and loaded back) before the point is logged or a checkpoint names it.
            checkpoints.save(checkpoints.network_dict([net], ["params_ema"]), self.best_file(it))
        with open(self.log_path, "a", newline="") as f:
            csv.DictWriter(f, VALIDATION_COLUMNS).writerow(
                {"iter": it, "val_psnr": psnr, "seconds": seconds, "elapsed_s": elapsed_s}
            )
        return psnr

    def prune(self) -> None:
        """Delete best-generator files other than the current best's (after a checkpoint that
        names it, or on resume)."""
        if not self.best_folder.is_dir():
            return
        keep = self.best_file(self.state.best_iter) if self.state.best_iter is not None else None
        for path in self.best_folder.glob("net_g_ema_*.pth"):
            if path != keep:
                path.unlink(missing_ok=True)

    def choice(self, total: int) -> Choice:
        """The generator to export after the last iteration (validated there)."""
        curve = tuple((int(i), float(p)) for i, p in self.state.curve)
        if self.rule == "last" or self.state.best_iter is None:
            last = next((p for i, p in reversed(curve) if i == total), None)
            return Choice("last", total, last, None, curve)
        return Choice(
            "best_val",
            self.state.best_iter,
            self.state.best_psnr,
            self.best_file(self.state.best_iter),
            curve,
        )

    def finish(self) -> None:
        """Remove the best-generator folder once the chosen generator is exported."""
        if self.best_folder.is_dir():
            for path in self.best_folder.iterdir():
                path.unlink(missing_ok=True)
            self.best_folder.rmdir()


def log_table(source: str | os.PathLike[str]) -> Any:
    """A run's validation log (its experiments folder or CSV) as a DataFrame: iter, val_psnr
    (dB), seconds (of the validation pass), elapsed_s (training seconds up to that point)."""
    import pandas as pd

    path = Path(source)
    if path.is_dir():
        path = path / VALIDATION_LOG
    if not path.is_file():
        return pd.DataFrame(columns=list(VALIDATION_COLUMNS))
    return pd.read_csv(path)


def chosen_weights(choice: Choice, net: torch.nn.Module) -> dict[str, Any]:
    """The ``{"params_ema": state}`` to export: the best file's, or ``net``'s own."""
    if choice.weights is None:
        return checkpoints.network_dict([net], ["params_ema"])
    return {"params_ema": checkpoints.load(choice.weights)["params_ema"]}


def log_choice(choice: Choice, logger: logging.Logger) -> None:
    if choice.psnr is None:
        logger.info(f"Exporting the generator of iteration {choice.iteration} (not validated).")
    else:
        logger.info(
            f"Exporting the generator of iteration {choice.iteration} ({choice.rule}): "
            f"validation PSNR {choice.psnr:.3f} dB."
        )
