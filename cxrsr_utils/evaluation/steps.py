"""Super-resolution evaluation (notebook 04): every method on the same LR inputs, scored against HR.

Methods: ``bicubic`` and ``lanczos`` (:func:`cxrsr_utils.images.radiographs.resize`),
``pretrained`` (the
un-tuned RealESRGAN_x4plus), each fine-tuned variant found under ``work/finetune/`` (notebook
03), and ``realesr-general-x4v3`` when its weights resolve. Inputs: the held-out NIH test pairs
("same dataset"; HR a native-pixel centre crop of the original) and every Kermany pair
("unseen"; HR the whole image resampled), prepared by notebook 01, each in the two evaluation
conditions of :data:`cxrsr_utils.core.layout.EVAL_CONDITIONS`: the paper's bicubic x4 LR, and a
low-quality LR made by the paper's two-stage degradation (fixed per image, saved).

Every method (:mod:`cxrsr_utils.evaluation.methods`) runs through
:func:`cxrsr_utils.sr.upscaler.load_model` and its :class:`~cxrsr_utils.sr.upscaler.Model`, the
path of ``cxrsr upscale`` and :func:`cxrsr_utils.upscale`, with the profile's inference
settings. SR outputs are written as
PNG (same bit depth as the HR) under ``work/sr/<method>/<condition>/<dataset>/`` and scored
from the written file, so a resumed run scores exactly what a fresh run scores, and notebook 05
classifies the very images scored here. The paper's tables and figures in their own form are
:mod:`cxrsr_utils.evaluation.paper_fig10` and :mod:`cxrsr_utils.evaluation.zoom`; the
statistics plan (which comparison is primary) is :mod:`cxrsr_utils.evaluation.comparisons`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from cxrsr_utils.core.errors import MissingStepError
from cxrsr_utils.core.layout import EVAL_CONDITIONS, StudyLayout, as_layout
from cxrsr_utils.core.params import Params
from cxrsr_utils.evaluation import methods as evaluation_methods
from cxrsr_utils.evaluation.labels import EVAL_SPLITS
from cxrsr_utils.evaluation.methods import Method
from cxrsr_utils.finetune.inference_settings import evaluate_infer_options
from cxrsr_utils.images import radiographs
from cxrsr_utils.stats import image_metrics as metrics


def eval_pairs(
    manifest: pd.DataFrame,
    work: StudyLayout | Path,
    conditions: Sequence[str] = tuple(EVAL_CONDITIONS),
) -> pd.DataFrame:
    """HR/LR pairs to evaluate, one row per (data set, image, condition): the NIH test and
    every Kermany image (:data:`EVAL_SPLITS`) of the run ``work`` (its folder or
    :class:`~cxrsr_utils.core.layout.StudyLayout`), each with the LR of each of ``conditions``.

    Columns: dataset, condition, image (path relative to the dataset's HR folder), hr, lr
    (absolute paths; lr is the condition's LR), label (Kermany: 0/1, NIH: NA). Sorted by data
    set, condition and image. A condition's missing LR file raises (run notebook 01).
    """
    layout = as_layout(work)
    if not layout.data.is_dir():
        raise MissingStepError(
            f"{layout.data} is missing: give the run's folder (work/<profile>) or its Paths, "
            "and run notebook 01 first."
        )
    unknown = [c for c in conditions if c not in EVAL_CONDITIONS]
    if unknown or not conditions:
        raise ValueError(f"conditions must be among {', '.join(EVAL_CONDITIONS)}, got {unknown}.")
    split = manifest["dataset"].map(EVAL_SPLITS)
    hr = manifest[(manifest["role"] == "hr") & (manifest["split"] == split)]
    rows = []
    for r in hr.itertuples():
        hr_path = layout.data / r.path
        image = hr_path.relative_to(layout.pair_folder(r.dataset, "hr"))
        for condition in conditions:
            rows.append(
                {
                    "dataset": r.dataset,
                    "condition": condition,
                    "image": image.as_posix(),
                    "hr": hr_path,
                    "lr": layout.pair_folder(r.dataset, EVAL_CONDITIONS[condition]) / image,
                    "label": r.label,
                }
            )
    if not rows:
        raise MissingStepError(
            "The data manifest has no test or cv HR images; run notebook 01 first."
        )
    pairs = pd.DataFrame(rows).sort_values(["dataset", "condition", "image"], ignore_index=True)
    missing = [p for p in pairs["lr"] if not p.is_file()]
    if missing:
        raise MissingStepError(
            f"{len(missing)} LR input(s) are missing, e.g. {missing[0]}: run notebook 01 "
            "(it writes the LR of every evaluation condition)."
        )
    return pairs


def study_methods(params: Params, work: StudyLayout | Path) -> tuple[list[Method], list[str]]:
    """The methods notebooks 04 and 05 compare, run with the profile's inference settings
    (:func:`~cxrsr_utils.finetune.inference_settings.evaluate_infer_options`; see
    :func:`~cxrsr_utils.evaluation.methods.available_methods`)."""
    options = evaluate_infer_options(params)
    return evaluation_methods.available_methods(
        work, options, include_general_v3=params.evaluate.include_general_v3
    )


def sr_path(
    work: StudyLayout | Path,
    method: Method,
    dataset: str,
    image: str,
    condition: str = "bicubic",
) -> Path:
    """Where the SR output of ``method`` for one image, from the LR of ``condition``, lives.

    The folder carries the first 12 hex digits of the weights' SHA-256, so outputs of other
    weights (a re-trained variant) are never reused by a resumed run.
    """
    folder = method.name.replace(":", "_") + (f"-{method.sha256[:12]}" if method.sha256 else "")
    return as_layout(work).sr_output(folder, dataset, image, condition)


def run_methods(
    pairs: pd.DataFrame, methods: list[Method], work: StudyLayout | Path
) -> pd.DataFrame:
    """Upscale every LR input (each pair of :func:`eval_pairs`: one image in one condition)
    with every method, write the outputs, score them against HR.

    Returns the per-image long table: dataset, condition, image, label, method, psnr, ssim,
    mse, lr_psnr (the SR output downsampled again against the LR it was made from: under the
    degraded condition that LR holds the degradation's noise and blur). Outputs that already
    exist are reused (resumable).
    """
    rows = []
    for method in methods:
        write_missing_outputs(pairs, method, work)
        for pair in pairs.itertuples():
            hr = radiographs.read_radiograph(pair.hr).as_float()
            lr = radiographs.read_radiograph(pair.lr).as_float()
            sr = radiographs.read_radiograph(
                sr_path(work, method, pair.dataset, pair.image, pair.condition)
            ).as_float()
            rows.append(
                {
                    "dataset": pair.dataset,
                    "condition": pair.condition,
                    "image": pair.image,
                    "label": pair.label,
                    "method": method.name,
                    **metrics.image_metrics(sr, hr, data_range=1.0),
                    "lr_psnr": metrics.lr_consistency(sr, lr, data_range=1.0),
                }
            )
    return pd.DataFrame(rows)


def write_missing_outputs(
    pairs: pd.DataFrame, method: Method, work: StudyLayout | Path, chunk: int | None = None
) -> int:
    """Write ``method``'s SR output of every pair that has none yet; returns how many it wrote.

    The pairs go to the method in fixed chunks of ``chunk`` (default: its inference batch
    size), in table order, so a network runs inputs of one size in batches. A chunk with any
    output missing is run whole and only its missing outputs are written (atomically): a
    resumed run batches every input as a fresh run does, so it writes the same pixels (batch
    composition can change float rounding). Each output is rounded to the bit depth of its HR.
    """
    size = chunk or method.model.options.batch_size
    rows = list(pairs.itertuples())
    chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
    written = 0
    with tqdm(total=len(rows), desc=method.name, unit="image", leave=False) as bar:
        for part in chunks:
            targets = [sr_path(work, method, p.dataset, p.image, p.condition) for p in part]
            if all(t.is_file() for t in targets):
                bar.update(len(part))
                continue
            lrs = [radiographs.read_radiograph(p.lr).as_float() for p in part]
            for pair, target, sr in zip(part, targets, method.upscale_many(lrs), strict=True):
                if not target.is_file():
                    top = radiographs.read_radiograph(pair.hr).max_value
                    radiographs.write_png(target, radiographs.to_pixels(sr, top))
                    written += 1
            bar.update(len(part))
    return written
