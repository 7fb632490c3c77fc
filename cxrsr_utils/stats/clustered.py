"""The patient-clustered bootstrap: resample patients, and every image of a drawn patient.

Images of one patient are not independent (same anatomy, same scanner, often the same label),
so resampling images as if they were makes intervals too narrow when patients have several
images (issue 21: the Kermany mirror has patients with up to several radiographs). Here each
replicate draws as many patients as there are, with replacement, and takes all images of each
drawn patient (a patient drawn twice counts twice): the cluster bootstrap of Davison and
Hinkley (1997, section 3.8), the resampling unit being the unit of independence.

:func:`cluster_indices` makes the replicates' image indices (seeded, so a table recomputed
from the same inputs is the same to the bit); :func:`clustered_mean_ci` and
:func:`clustered_auc_difference` are the intervals the study reports beside the image
bootstrap of :mod:`cxrsr_utils.stats.bootstrap`. With one image per patient the cluster
bootstrap is the image bootstrap (the same draws).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrsr_utils.core import repro
from cxrsr_utils.stats.bootstrap import finite_values, percentile_interval
from cxrsr_utils.stats.classifier_scores import roc_auc


def cluster_indices(groups: Any, n_resamples: int, seed: int = 0) -> list[np.ndarray]:
    """For each of ``n_resamples`` replicates, the indices of the images it holds.

    ``groups`` holds each image's patient (any hashable labels); the patients are numbered in
    order of first appearance, so the draws depend only on (``seed``, the grouping), never on
    the labels' spelling.
    """
    labels = np.asarray(groups)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"groups must be one label per image, got shape {labels.shape}.")
    _, first, codes = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # patient number by first appearance
    codes = order[codes]
    members = [np.flatnonzero(codes == k) for k in range(len(first))]
    draws = repro.rng(seed, "cluster-bootstrap").integers(
        0, len(members), size=(n_resamples, len(members))
    )
    return [np.concatenate([members[k] for k in row]) for row in draws]


def clustered_mean_ci(
    values: Any,
    groups: Any,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, float]:
    """Mean over images with a patient-clustered percentile-bootstrap interval.

    Returns ``{"n", "patients", "mean", "ci_low", "ci_high"}``; NaN bounds with one patient.
    """
    array = finite_values(values, "clustered_mean_ci")
    if len(np.asarray(groups)) != array.size:
        raise ValueError(f"{array.size} values but {len(np.asarray(groups))} group labels.")
    patients = len(np.unique(np.asarray(groups)))
    mean = float(array.mean())
    if patients < 2:
        return {
            "n": array.size,
            "patients": patients,
            "mean": mean,
            "ci_low": np.nan,
            "ci_high": np.nan,
        }
    replicates = [array[i].mean() for i in cluster_indices(groups, n_resamples, seed)]
    low, high = percentile_interval(replicates, confidence)
    return {"n": array.size, "patients": patients, "mean": mean, "ci_low": low, "ci_high": high}


def clustered_auc_difference(
    labels: Any,
    scores: Any,
    reference_scores: Any,
    groups: Any,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """AUC(``scores``) - AUC(``reference_scores``) with a paired, patient-clustered interval.

    Both forms are scored on the same resampled patients; replicates holding one class only
    have no AUC and are dropped. Returns ``{"auc", "reference_auc", "difference", "ci_low",
    "ci_high"}``.
    """
    y = np.asarray(labels).astype(np.int64)
    a = np.asarray(scores, dtype=np.float64)
    b = np.asarray(reference_scores, dtype=np.float64)
    if not a.shape == b.shape == y.shape == np.asarray(groups).shape:
        raise ValueError("labels, both forms' scores and groups need one value per image.")
    replicates = [
        roc_auc(y[i], a[i]) - roc_auc(y[i], b[i])
        for i in cluster_indices(groups, n_resamples, seed)
    ]
    auc, reference = roc_auc(y, a), roc_auc(y, b)
    low, high = percentile_interval(replicates, confidence)
    return {
        "auc": auc,
        "reference_auc": reference,
        "difference": auc - reference,
        "ci_low": low,
        "ci_high": high,
    }
