"""A classifier's scores from labelled predictions (notebook 05, via
:mod:`cxrsr_utils.classification.forms`): :func:`binary_cross_entropy` (as Keras computes it),
:func:`roc_auc`, :func:`confusion_matrix` and :func:`sensitivity_specificity`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

# Keras clips probabilities to [eps, 1 - eps] in binary cross-entropy; we use the same value so
# the loss computed from saved probabilities matches the one Keras reports.
KERAS_EPSILON = 1e-7


def binary_cross_entropy(
    labels: Any, probabilities: Any, *, epsilon: float = KERAS_EPSILON
) -> float:
    """Mean binary cross-entropy of probabilities, clipped to [eps, 1-eps] as Keras does.

    Keras' ``evaluate`` works from the sigmoid's logits instead, so the two agree except for
    saturated predictions (p within ~1e-7 of 0 or 1).
    """
    y = np.asarray(labels, dtype=np.float64)
    # Clip in float32 like Keras (1 - 1e-7 rounds to 1 - 1.19e-7 there), then log in float64.
    lo, hi = np.float32(epsilon), np.float32(1) - np.float32(epsilon)
    p = np.clip(np.asarray(probabilities, dtype=np.float32), lo, hi).astype(np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def roc_auc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve: the Mann-Whitney U of the positives over n_pos * n_neg.

    ``scipy.stats.mannwhitneyu``'s U counts the (positive, negative) pairs ordered right, ties
    one half, which is the ROC AUC; dividing the exact count gives the correctly rounded value.
    ``sklearn.metrics.roc_auc_score`` integrates its ROC curve's trapezoids instead and lands
    up to one unit in the last place away (tests compare the two); the committed tables were
    made with U. NaN when only one class is present.
    """
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # The p-value is not used; the asymptotic method is the cheap one to skip past.
    u = stats.mannwhitneyu(s[y], s[~y], method="asymptotic", use_continuity=False).statistic
    return float(u / (n_pos * n_neg))


def confusion_matrix(labels: Any, predictions: Any) -> np.ndarray:
    """2x2 counts [[TN, FP], [FN, TP]]: rows true NORMAL/PNEUMONIA, columns predicted.

    ``sklearn.metrics.confusion_matrix`` with both labels named, so a class absent from the
    data still has its row and column of zeros.
    """
    from sklearn import metrics as skmetrics  # seconds to import; only notebook 05 needs it

    y = np.asarray(labels).astype(np.int64)
    p = np.asarray(predictions).astype(np.int64)
    return skmetrics.confusion_matrix(y, p, labels=[0, 1])


def sensitivity_specificity(labels: Any, predictions: Any) -> tuple[float, float]:
    """(TP / (TP + FN), TN / (TN + FP)) with PNEUMONIA positive; NaN if a class is absent."""
    (tn, fp), (fn, tp) = confusion_matrix(labels, predictions)
    sens = tp / (tp + fn) if tp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    return float(sens), float(spec)
