"""Kermany pneumonia for notebook 01: every usable image as an HR/LR pair, in grouped folds.

The mirror holds only images of Kermany's official *train* split, so the classifier is
evaluated by cross-validation over them: patient-grouped, class-stratified folds
(:func:`cxrsr_utils.data_prep.splits.kermany_folds`), every image in exactly one fold, so each gets
an
out-of-fold prediction. HR is the whole image resampled to ``hr_size`` squared (the
classifier reads the whole chest and squashes it to its input size anyway); LR is bicubic x4
of it and ``lr_degraded`` the paper's two-stage degradation of it, seeded per image.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from cxrsr_utils.core.layout import StudyLayout
from cxrsr_utils.core.params_data import KermanyParams
from cxrsr_utils.core.repro import rng
from cxrsr_utils.core.vocabulary import KERMANY_CLASSES
from cxrsr_utils.data_prep.prepared import Prepared, list_images, save_pixels
from cxrsr_utils.data_prep.splits import kermany_folds, kermany_patient
from cxrsr_utils.degradation.pairs import degradation_seed, pair_forms, square_hr
from cxrsr_utils.external.sources import resolve_dataset
from cxrsr_utils.images import radiographs


def select_kermany(root: Path, cfg: KermanyParams, seed: int) -> pd.DataFrame:
    """The images (every one, or a seeded ``n_per_class`` of each class) and their folds.

    Columns: file (Path), label, class_name, patient, fold; sorted by class and file name.
    """
    rows = []
    for label, name in enumerate(KERMANY_CLASSES):
        files = list_images(root / "train" / name)
        if cfg.n_per_class is not None:
            if len(files) < cfg.n_per_class:
                raise ValueError(
                    f"{root / 'train' / name} has {len(files)} images; kermany.n_per_class asks "
                    f"for {cfg.n_per_class}. Lower it, set it to null (every image), or use the "
                    "full data set."
                )
            pick = rng(seed, "kermany", name).permutation(len(files))[: cfg.n_per_class]
            files = [files[i] for i in sorted(pick)]
        rows += [{"file": f, "label": label, "class_name": name} for f in files]
    table = pd.DataFrame(rows, columns=["file", "label", "class_name"])
    table["patient"] = table["file"].map(kermany_patient)
    table["fold"] = kermany_folds(table, cfg.folds, seed)
    return table


def pair_image(class_name: str, file: Path) -> str:
    """An image's name relative to the Kermany pair folders: ``<CLASS>/<stem>.png``."""
    return f"{class_name}/{file.stem}.png"


def prepare_kermany(
    cfg: KermanyParams,
    seed: int,
    scale: int,
    layout: StudyLayout,
    degradation: Mapping[str, Any],
) -> tuple[Prepared, pd.DataFrame]:
    """HR / LR / degraded-LR pairs of the Kermany images in ``layout``
    (``kermany/{hr,lr,lr_degraded}/<CLASS>/``), split ``cv`` with their fold.

    Returns them and the split table: file, label, class_name, patient, fold, width and height
    (the original's size; NA when excluded), note (how the image was read, or ``excluded``).
    """
    root = resolve_dataset("kermany", cfg.root)
    table = select_kermany(root, cfg, seed)
    result = Prepared()
    notes, widths, heights = [], [], []
    for row in tqdm(table.itertuples(), total=len(table), desc="Kermany pairs", leave=False):
        img = result.read(row.file, "kermany")
        notes.append(img.note if img else "excluded")
        widths.append(img.pixels.shape[1] if img else None)
        heights.append(img.pixels.shape[0] if img else None)
        if img is None:
            continue
        image = pair_image(row.class_name, row.file)
        hr = radiographs.to_pixels(square_hr(img.as_float(), cfg.hr_size), img.max_value)
        forms = pair_forms(
            hr, img.max_value, scale, degradation, degradation_seed(seed, "kermany", image)
        )
        base = {
            "dataset": "kermany",
            "split": "cv",
            "source": row.file.name,
            "label": row.label,
            "fold": row.fold,
            "patient": row.patient,
        }
        for role, pixels in forms.items():
            target = layout.pair_folder("kermany", role) / image
            result.files.append(save_pixels(pixels, target, layout.data, {**base, "role": role}))
    table["width"] = pd.array(widths, dtype="Int64")
    table["height"] = pd.array(heights, dtype="Int64")
    table["note"] = notes
    return result, table
