"""The patient-clustered bootstrap: resample patients, and every image of a drawn patient.

Images of one patient are not independent (same anatomy, same scanner, often the same label),
so resampling images as if they were makes intervals too narrow when patients have several
images (issue 21: the Kermany mirror has patients with up to several radiographs). Here each
replicate draws as many patients as there are, with replacement, and takes all images of each
drawn patient (a patient drawn twice counts twice): the cluster bootstrap of Davison and
Hinkley (1997, section 3.8), the resampling unit being the unit of independence.

:func:`cluster_indices` makes the replicates' image indices (seeded, so a table recomputed
from the same inputs is the same to the bit); :mod:`cxrsr_utils.stats.bootstrap` takes them
for its intervals when given each image's patient (``groups``). With one image per patient
the cluster bootstrap is the image bootstrap in distribution.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrsr_utils.core import repro


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
