"""Notebook 05's images: notebook 01's Kermany pairs, with their patients, folds and sizes.

:func:`load_kermany` reads the data manifest's Kermany HR images (every usable image, with its
patient, its patient-grouped fold and its original size) and their LR files, and loads the HR
at the classifier's input size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxrsr_utils.classification.folds import check_grouped_folds, n_folds
from cxrsr_utils.classification.images import load_images
from cxrsr_utils.core.errors import MissingStepError
from cxrsr_utils.core.layout import EVAL_CONDITIONS, Paths
from cxrsr_utils.core.params import Params


@dataclass(frozen=True)
class KermanyImages:
    """Every Kermany image of the run, with its fold, and its HR at the classifier's size."""

    # One row per image, sorted by image: image (<CLASS>/<stem>.png, its name in the pair
    # folders), path, sha256, hr and one column per LR role (absolute paths), label, patient,
    # fold, width and height (the original's, before notebook 01 resampled it).
    table: pd.DataFrame
    x: np.ndarray  # the original (HR) form at the classifier's input size
    y: np.ndarray

    def describe(self) -> str:
        """How many images, pneumonia images, patients and folds."""
        t = self.table
        return (
            f"{len(t)} images ({int(self.y.sum())} pneumonia) of {t.patient.nunique()} "
            f"patients in {n_folds(t.fold)} patient-grouped folds"
        )


def _original_sizes(paths: Paths) -> pd.DataFrame:
    split = pd.read_csv(paths.tables / "01_kermany_split.csv")
    stems = split["file"].map(lambda f: Path(f).stem)
    image = split["class_name"] + "/" + stems + ".png"
    return pd.DataFrame({"image": image, "width": split["width"], "height": split["height"]})


def load_kermany(params: Params, paths: Paths) -> KermanyImages:
    """Notebook 01's Kermany HR images (the data manifest's rows) with their LR files, folds
    and patients, and the original sizes of its ``01_kermany_split`` table; the HR loaded at
    ``params.classifier.image_size``. Raises if a patient spans two folds."""
    manifest = pd.read_csv(paths.data_manifest)
    hr = manifest[(manifest.dataset == "kermany") & (manifest.role == "hr")]
    if hr.empty:
        raise MissingStepError("The data manifest has no Kermany images; run notebook 01 first.")
    hr_folder = paths.pair_folder("kermany", "hr")
    table = pd.DataFrame(
        {
            "image": [(paths.data / p).relative_to(hr_folder).as_posix() for p in hr.path],
            "path": hr.path.to_numpy(),
            "sha256": hr.sha256.to_numpy(),
            "label": hr.label.astype(int).to_numpy(),
            "patient": hr.patient.to_numpy(),
            "fold": hr.fold.astype(int).to_numpy(),
        }
    )
    for role in ("hr", *EVAL_CONDITIONS.values()):
        table[role] = [paths.pair_folder("kermany", role) / i for i in table.image]
    sizes = _original_sizes(paths)
    table = table.merge(sizes, on="image", how="left", validate="one_to_one")
    if table[["width", "height"]].isna().any().any():
        missing = table.image[table.width.isna()].head(3).tolist()
        raise ValueError(f"01_kermany_split has no original size for e.g. {missing}.")
    table = table.sort_values("image", ignore_index=True)
    check_grouped_folds(table)
    x = load_images(list(table.hr), image_size=params.classifier.image_size)
    return KermanyImages(table, x, table.label.to_numpy(int))
