"""A size-only baseline for the pneumonia classifier: can image size alone tell the classes?

In the Kermany mirror the classes differ in image size (NORMAL median about 1678 x 1410,
PNEUMONIA about 1176 x 760), so a network could score well by recognising the size of the
image rather than the lungs. The baseline is a logistic regression (scikit-learn, features
standardised) on the ORIGINAL image's width, height and aspect ratio (width / height), fitted
with the same patient-grouped folds as the CNN (:mod:`cxrsr_utils.classification.folds`): for
each split, it trains on every fold but the test fold (nothing is chosen on validation, so the
validation fold trains too) and predicts the test fold, out of fold.

:func:`compare_with_cnn` sets its AUC beside the CNN's on the same images with a paired
bootstrap CI of the difference and says in one sentence whether size explains the CNN's AUC.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cxrsr_utils.classification.folds import FoldSplit
from cxrsr_utils.stats import bootstrap, classifier_scores

__all__: list[str] = ["FEATURES", "compare_with_cnn", "out_of_fold", "size_features"]

FEATURES = ("width", "height", "aspect")


def size_features(table: pd.DataFrame) -> np.ndarray:
    """(N, 3) float features: width, height and width / height of each original image."""
    width = table["width"].to_numpy(dtype=np.float64)
    height = table["height"].to_numpy(dtype=np.float64)
    if not (np.isfinite(width).all() and np.isfinite(height).all()) or (height <= 0).any():
        raise ValueError("size_features needs a positive width and height for every image.")
    return np.column_stack([width, height, width / height])


def _model() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # Standardised features: pixel counts in the thousands would otherwise leave lbfgs
    # badly conditioned. Default L2 penalty; nothing is tuned.
    return make_pipeline(StandardScaler(), LogisticRegression())


def out_of_fold(table: pd.DataFrame, plan: Sequence[FoldSplit]) -> pd.DataFrame:
    """Out-of-fold P(PNEUMONIA) from image size, for the test images of every split of
    ``plan``.

    ``table``: one row per image with image, label, fold, width, height (the original's).
    Returns image, label, fold, probability, in ``table``'s order, test images only.
    """
    x = size_features(table)
    y = table["label"].to_numpy(dtype=np.int64)
    folds = table["fold"].to_numpy()
    probability = np.full(len(table), np.nan)
    for split in plan:
        test = folds == split.test
        fit = ~test
        if len(np.unique(y[fit])) < 2:
            raise ValueError(f"the training folds of test fold {split.test} hold one class.")
        model = _model().fit(x[fit], y[fit])
        probability[test] = model.predict_proba(x[test])[:, 1]
    tested = ~np.isnan(probability)
    out = table.loc[tested, ["image", "label", "fold"]].reset_index(drop=True)
    out["probability"] = probability[tested]
    return out


def compare_with_cnn(
    size: pd.DataFrame,
    cnn: pd.DataFrame,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[pd.DataFrame, str]:
    """The size baseline's AUC and the CNN's on the same images, and a sentence on them.

    ``size``: :func:`out_of_fold`'s table; ``cnn``: the CNN's out-of-fold predictions of the
    original form (image, label, probability). Returns a two-row table (model, n, auc,
    auc_low, auc_high: percentile-bootstrap CIs on the same resamples) with the paired
    difference CNN - size (``auc_diff``, ``auc_diff_low``, ``auc_diff_high``) on the CNN's
    row, and the sentence: size alone does not explain the CNN's AUC when the whole CI of
    the difference is above 0; it could, otherwise (and does better when the CI is below 0).
    """
    merged = cnn[["image", "label", "probability"]].merge(
        size[["image", "label", "probability"]],
        on=["image", "label"],
        suffixes=("_cnn", "_size"),
        validate="one_to_one",
    )
    if len(merged) != len(cnn) or len(merged) != len(size):
        raise ValueError("the CNN and the size baseline must predict the same images.")
    y = merged["label"].to_numpy()
    resampling: dict[str, Any] = {
        "n_resamples": n_resamples,
        "confidence": confidence,
        "seed": seed,
    }
    rows = []
    for model, column in (("size-only logistic regression", "size"), ("CNN (original)", "cnn")):
        prob = merged[f"probability_{column}"].to_numpy()
        low, high = bootstrap.bootstrap_classification_ci(y, prob, metric="auc", **resampling)
        auc = classifier_scores.roc_auc(y, prob)
        rows.append({"model": model, "n": len(y), "auc": auc, "auc_low": low, "auc_high": high})
    diff = bootstrap.bootstrap_auc_difference(
        y, merged["probability_cnn"], merged["probability_size"], **resampling
    )
    table = pd.DataFrame(rows)
    table["auc_diff"] = [np.nan, diff["difference"]]
    table["auc_diff_low"] = [np.nan, diff["ci_low"]]
    table["auc_diff_high"] = [np.nan, diff["ci_high"]]
    return table, _sentence(table, diff, confidence)


def _sentence(table: pd.DataFrame, diff: dict[str, float], confidence: float) -> str:
    size, cnn = table.iloc[0], table.iloc[1]
    ci = f"{confidence:.0%} CI"

    def auc(row: pd.Series) -> str:
        return f"{row.auc:.3f} [{row.auc_low:.3f}, {row.auc_high:.3f}]"

    gap = f"{diff['difference']:+.3f} [{diff['ci_low']:+.3f}, {diff['ci_high']:+.3f}]"
    text = (
        f"Image size alone (logistic regression on width, height and aspect) reaches AUC "
        f"{auc(size)}; the CNN on the original images {auc(cnn)} ({ci}); CNN minus size "
        f"{gap}, paired bootstrap. "
    )
    if diff["ci_low"] > 0:
        return text + "Size alone does not explain the CNN's AUC."
    if diff["ci_high"] < 0:
        return text + (
            "Image size alone separates the classes better than the CNN does: size could "
            "explain all of the CNN's AUC."
        )
    return text + (
        "Size alone could explain the CNN's AUC: the CNN is not shown to do better than image "
        "size does."
    )
