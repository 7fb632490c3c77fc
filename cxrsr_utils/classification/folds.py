"""The classifier's patient-grouped cross-validation: which fold tests, validates and trains.

Notebook 01 gives every Kermany image a ``fold`` 0..K-1 (the data manifest's column; all the
images of one patient share a fold, classes stratified). For test fold k:

- **test**: the images of fold k, predicted once by the model of this split (out of fold);
- **validation**: fold (k + 1) mod K, used only to choose the epoch (early stopping on the
  validation loss), never to score;
- **training**: every other fold.

With every split run (``classifier.cv``), each image is predicted exactly once; a smoke run
trains only the split of test fold 0. Nothing here imports Keras.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxrsr_utils.core.errors import MissingStepError

__all__: list[str] = [
    "FoldSplit",
    "check_grouped_folds",
    "fold_plan",
    "folds_table",
    "n_folds",
]

# Training needs at least one fold besides the test and the validation fold.
MIN_FOLDS = 3


@dataclass(frozen=True)
class FoldSplit:
    """One split of the cross-validation: the fold it tests and the fold it validates on."""

    test: int
    validation: int

    def role(self, folds: Sequence[int] | np.ndarray) -> np.ndarray:
        """Each image's role in this split, from its fold: "test", "validation" or "train"."""
        folds = np.asarray(folds)
        return np.where(
            folds == self.test, "test", np.where(folds == self.validation, "validation", "train")
        )

    def masks(self, folds: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """Boolean masks of the train, validation and test images of this split."""
        role = self.role(folds)
        return {name: role == name for name in ("train", "validation", "test")}


def n_folds(folds: Sequence[int] | np.ndarray) -> int:
    """K, from the images' folds, after checking they are exactly 0..K-1 (each used) and
    K >= 3 (a training fold besides the test and validation folds)."""
    values = pd.Series(np.asarray(folds))
    if values.isna().any():
        raise MissingStepError(
            f"{int(values.isna().sum())} image(s) have no fold; rerun notebook 01 (the data "
            "manifest's Kermany rows need a fold)."
        )
    present = sorted({int(v) for v in values})
    k = len(present)
    if present != list(range(k)):
        raise ValueError(f"folds must be 0..K-1, each used; got {present}.")
    if k < MIN_FOLDS:
        raise ValueError(
            f"{k} fold(s): cross-validation needs at least {MIN_FOLDS} (test, validation, "
            "training); raise kermany.folds."
        )
    return k


def fold_plan(folds: Sequence[int] | np.ndarray, *, cv: bool = True) -> list[FoldSplit]:
    """The splits to train: test fold k with validation fold (k + 1) mod K, for every k with
    ``cv``, else only k = 0 (a smoke run). K comes from the folds (:func:`n_folds`)."""
    k = n_folds(folds)
    tested = range(k) if cv else range(1)
    return [FoldSplit(test=t, validation=(t + 1) % k) for t in tested]


def check_grouped_folds(table: pd.DataFrame) -> None:
    """Raise unless each patient's images all sit in one fold (``table``: patient, fold).

    With that, no patient is in the training (or validation) and the test images of a split.
    """
    folds_per_patient = table.groupby("patient")["fold"].nunique()
    split = folds_per_patient[folds_per_patient > 1]
    if len(split):
        shown = ", ".join(map(str, split.index[:5]))
        raise ValueError(
            f"{len(split)} patient(s) have images in more than one fold (e.g. {shown}): the "
            "folds must be grouped by patient."
        )


def folds_table(table: pd.DataFrame, plan: Sequence[FoldSplit]) -> pd.DataFrame:
    """One row per split: its test and validation folds, and how many images, pneumonia
    images and patients train, validate and test it (``table``: fold, label, patient)."""
    rows = []
    for split in plan:
        row: dict[str, object] = {"test_fold": split.test, "validation_fold": split.validation}
        for name, mask in split.masks(table["fold"]).items():
            part = table[mask]
            row[f"{name}_images"] = len(part)
            row[f"{name}_pneumonia"] = int(part["label"].sum())
            row[f"{name}_patients"] = part["patient"].nunique()
        rows.append(row)
    return pd.DataFrame(rows)
