"""Bootstrap intervals: of a mean over per-image values, of a classifier's accuracy or AUC, and
of the paired difference of two forms' AUCs.

Over per-image values (notebook 04, via :mod:`cxrsr_utils.stats.image_metrics`' tables):
:func:`bootstrap_mean_ci` (mean with a percentile-bootstrap CI, ``scipy.stats.bootstrap``),
and :func:`clustered_mean_ci` (resampling patients, :mod:`cxrsr_utils.stats.clustered`).

Over labelled predictions (notebook 05, via :mod:`cxrsr_utils.classification.forms`):
:func:`bootstrap_classification_ci` (accuracy or AUC, with the same resampled images for every
form), :func:`auc_difference_replicates` and :func:`bootstrap_auc_difference` (the paired CI of
one form's AUC minus another's), and :func:`percentile_interval` (the interval of any
replicates).

Every resampling is seeded, so a table recomputed from the same inputs is the same to the bit.
The two bootstraps draw differently (scipy's resampler for means; one index matrix shared by
all forms for classification scores) and are kept so: the committed tables were made with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from cxrsr_utils.core import repro
from cxrsr_utils.stats.classifier_scores import roc_auc
from cxrsr_utils.stats.clustered import cluster_indices


def finite_values(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    """``values`` as a flat float64 array; raises when empty or when any is NaN or infinite."""
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError(f"{what}: no values.")
    if not np.isfinite(array).all():
        raise ValueError(
            f"{what}: {np.count_nonzero(~np.isfinite(array))} value(s) are NaN or infinite "
            "(an infinite PSNR means an SR image equal to HR: check the pipeline)."
        )
    return array


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int | np.random.Generator = 0,
) -> dict[str, float]:
    """Mean with a percentile-bootstrap confidence interval.

    ``scipy.stats.bootstrap(method="percentile")`` resamples the values ``n_resamples``
    times with a numpy Generator made from ``seed`` (so the CI is reproducible). Returns
    ``{"n", "mean", "ci_low", "ci_high"}``; with a single value the CI is NaN (there is
    nothing to resample). NaN or infinite values raise.
    """
    array = finite_values(values, "bootstrap_mean_ci")
    mean = float(array.mean())
    if array.size < 2:
        return {"n": 1, "mean": mean, "ci_low": float("nan"), "ci_high": float("nan")}
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    result = stats.bootstrap(
        (array,),
        np.mean,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        rng=rng,
    )
    ci = result.confidence_interval
    return {"n": int(array.size), "mean": mean, "ci_low": float(ci.low), "ci_high": float(ci.high)}


def clustered_mean_ci(
    values: Sequence[float] | np.ndarray,
    groups: Any,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, float]:
    """Mean over images with a patient-clustered percentile-bootstrap interval
    (:func:`cxrsr_utils.stats.clustered.cluster_indices`). Returns ``{"n", "patients", "mean",
    "ci_low", "ci_high"}``; NaN bounds with a single patient."""
    array = finite_values(values, "clustered_mean_ci")
    labels = np.asarray(groups)
    if labels.shape != array.shape:
        raise ValueError(f"{array.size} values but {labels.size} group labels.")
    patients = len(np.unique(labels))
    out: dict[str, float] = {"n": array.size, "patients": patients, "mean": float(array.mean())}
    if patients < 2:
        return {**out, "ci_low": float("nan"), "ci_high": float("nan")}
    replicates = [array[i].mean() for i in cluster_indices(labels, n_resamples, seed)]
    low, high = percentile_interval(replicates, confidence)
    return {**out, "ci_low": low, "ci_high": high}


def _bootstrap_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    # The same resamples for every form (same seed and n), so intervals are paired.
    return repro.rng(seed, "classifier-bootstrap").integers(0, n, size=(n_resamples, n))


def bootstrap_classification_ci(
    labels: Any,
    probabilities: Any,
    *,
    metric: str = "accuracy",
    threshold: float = 0.5,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric`` ('accuracy' or 'auc') over images.

    Images are resampled with replacement ``n_resamples`` times; the index matrix depends only
    on (``seed``, number of images), so every form of the same images is resampled alike and
    the intervals are paired. Resamples with a single class have no AUC and are dropped.
    (``scipy.stats.bootstrap`` would draw per call and cannot drop those resamples.)
    """
    y = np.asarray(labels).astype(np.int64)
    prob = np.asarray(probabilities, dtype=np.float64)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    if n_resamples < 1 or len(y) == 0:
        return float("nan"), float("nan")
    idx = _bootstrap_indices(len(y), n_resamples, seed)
    values: np.ndarray
    if metric == "accuracy":
        values = ((prob[idx] >= threshold) == y[idx]).mean(axis=1)
    elif metric == "auc":
        values = np.array([roc_auc(y_b, p_b) for y_b, p_b in zip(y[idx], prob[idx], strict=True)])
    else:
        raise ValueError(f"Unknown metric {metric!r}; use 'accuracy' or 'auc'.")
    if np.isnan(values).all():
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    low, high = np.nanquantile(values, [alpha, 1 - alpha])
    return float(low), float(high)


def auc_difference_replicates(
    labels: Any,
    scores: Any,
    reference_scores: Any,
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    groups: Any = None,
) -> np.ndarray:
    """Bootstrap replicates of AUC(``scores``) - AUC(``reference_scores``) on the same images.

    Paired: each replicate resamples the images once (the index matrix of
    :func:`bootstrap_classification_ci`, so the same resamples as the forms' own AUC intervals)
    and scores both forms on that one resample. With ``groups`` (each image's patient) the
    replicates resample patients instead, every image of a drawn patient with it
    (:func:`cxrsr_utils.stats.clustered.cluster_indices`). Replicates whose resample holds a
    single class have no AUC and are NaN.
    """
    y = np.asarray(labels).astype(np.int64)
    a = np.asarray(scores, dtype=np.float64)
    b = np.asarray(reference_scores, dtype=np.float64)
    if not a.shape == b.shape == y.shape:
        raise ValueError(
            f"paired AUCs need one score per image in both forms: {a.shape}, {b.shape}, "
            f"labels {y.shape}."
        )
    if n_resamples < 1 or len(y) == 0:
        return np.empty(0)
    if groups is None:
        idx: Any = _bootstrap_indices(len(y), n_resamples, seed)
    elif np.asarray(groups).shape != y.shape:
        raise ValueError(
            f"groups need one patient per image: {np.asarray(groups).shape}, {y.shape}."
        )
    else:
        idx = cluster_indices(groups, n_resamples, seed)
    return np.array([roc_auc(y[i], a[i]) - roc_auc(y[i], b[i]) for i in idx])


def bootstrap_auc_difference(
    labels: Any,
    scores: Any,
    reference_scores: Any,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    groups: Any = None,
) -> dict[str, float]:
    """AUC(``scores``) - AUC(``reference_scores``) with a paired percentile-bootstrap CI.

    Both forms are scored on the same resampled images (:func:`auc_difference_replicates`;
    resampled by patient with ``groups``); identical forms give a zero-width interval at 0.
    Returns ``{"auc", "reference_auc", "difference", "ci_low", "ci_high"}`` (NaN bounds when no
    resample holds both classes).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    replicates = auc_difference_replicates(
        labels, scores, reference_scores, n_resamples=n_resamples, seed=seed, groups=groups
    )
    auc, reference = roc_auc(labels, scores), roc_auc(labels, reference_scores)
    low, high = percentile_interval(replicates, confidence)
    return {
        "auc": auc,
        "reference_auc": reference,
        "difference": auc - reference,
        "ci_low": low,
        "ci_high": high,
    }


def percentile_interval(replicates: Any, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` percentile interval of bootstrap replicates (NaN dropped;
    NaN bounds when none is left)."""
    replicates = np.asarray(replicates, dtype=np.float64)
    finite = replicates[~np.isnan(replicates)]
    if finite.size == 0:
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return float(low), float(high)
