"""What notebook 04's data sets and conditions are called in its tables and figures.

Each data set's label says what its HR ground truth is (NIH: native pixels; Kermany: a
resample); :data:`EVAL_SPLITS` is the manifest split each data set is evaluated on.
"""

from __future__ import annotations

import pandas as pd

# What the HR ground truth of each data set is, said wherever a data set is named: NIH's is
# native pixels, Kermany's is itself a resample (the classifier reads the whole chest).
DATASET_LABELS = {
    "nih": "NIH held-out test (HR: native-pixel centre crop)",
    "kermany": "Kermany, unseen (HR: whole image resampled)",
}
CONDITION_LABELS = {
    "bicubic": "bicubic x4 LR (the paper's protocol)",
    "degraded": "two-stage degraded LR (low quality)",
}
# The manifest's split of the pairs each data set is evaluated on (every Kermany image: none
# of them trains the SR networks, and notebook 05 classifies each one in every form).
EVAL_SPLITS = {"nih": "test", "kermany": "cv"}


def dataset_label(dataset: str) -> str:
    """A data set's name as tables and figures show it (unknown names as they are)."""
    return DATASET_LABELS.get(dataset, dataset)


def condition_label(condition: str) -> str:
    """An evaluation condition's name as figures show it (unknown names as they are)."""
    return CONDITION_LABELS.get(condition, condition)


def with_dataset_labels(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its ``dataset`` column in the words of :data:`DATASET_LABELS`."""
    return table.assign(dataset=table["dataset"].map(dataset_label))


def with_labels(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its ``dataset`` and ``condition`` columns (where it has one) in the
    words of :data:`DATASET_LABELS` and :data:`CONDITION_LABELS` (what figures show)."""
    labelled = with_dataset_labels(table)
    if "condition" in table.columns:
        labelled["condition"] = table["condition"].map(condition_label)
    return labelled
