"""A size-matched subset of the classifier's images: NORMAL and PNEUMONIA pairs of like size.

In the Kermany mirror the classes differ in image size (NORMAL originals are larger and
squarer), so a comparison of forms on all images may reward a network that reads size. On a
subset where every PNEUMONIA image has a NORMAL partner of nearly the same width and height,
size carries no class information, and what a form keeps there is signal beyond size.

The rule, declared before any result (issue 21): the distance between two images is the
Euclidean distance of their (log width, log height), so a 10% difference in one side is about
0.095 wherever the image sits; all cross-class pairs are sorted by distance (ties by the
images' order in the table), and a pair is taken when neither image is taken yet and the
distance is at most ``caliper`` (default :data:`CALIPER`: about 10% in one side, or 7% in
both). This is greedy 1:1 nearest-neighbour matching without replacement within a caliper:
the closest pairs are taken first, and no image is in two pairs. It is not the optimal
matching (which would minimise the total distance), but it is simple to state before the data
and gives the same subset on every machine.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CALIPER = 0.1


def size_distances(table: pd.DataFrame) -> np.ndarray:
    """(N, N) distances of (log width, log height) between every two images of ``table``."""
    width = table["width"].to_numpy(dtype=np.float64)
    height = table["height"].to_numpy(dtype=np.float64)
    if (width <= 0).any() or (height <= 0).any() or not np.isfinite(width + height).all():
        raise ValueError("size matching needs a positive width and height for every image.")
    points = np.column_stack([np.log(width), np.log(height)])
    return np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1))


def match_by_size(
    table: pd.DataFrame, *, label: str = "label", caliper: float = CALIPER
) -> pd.DataFrame:
    """The matched pairs of ``table`` (columns ``width``, ``height`` and the 0/1 ``label``).

    Returns one row per pair: ``pair`` (0, 1, ... in order of distance), ``positive`` and
    ``negative`` (the two images' index labels in ``table``) and ``distance``.
    """
    y = table[label].to_numpy().astype(bool)
    dist = size_distances(table)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    pair_dist = dist[np.ix_(pos, neg)].ravel()
    # A stable sort keeps ties in the table's order: (positive, negative) row-major.
    order = np.argsort(pair_dist, kind="stable")
    used_pos: set[int] = set()
    used_neg: set[int] = set()
    rows: list[dict[str, object]] = []
    for flat in order:
        if pair_dist[flat] > caliper:
            break
        p, n = pos[flat // len(neg)], neg[flat % len(neg)]
        if p in used_pos or n in used_neg:
            continue
        used_pos.add(p)
        used_neg.add(n)
        rows.append(
            {
                "pair": len(rows),
                "positive": table.index[p],
                "negative": table.index[n],
                "distance": float(pair_dist[flat]),
            }
        )
    return pd.DataFrame(rows, columns=["pair", "positive", "negative", "distance"])


def matched_subset(
    table: pd.DataFrame, *, label: str = "label", caliper: float = CALIPER
) -> pd.DataFrame:
    """The rows of ``table`` in a matched pair, with their ``pair`` number added."""
    pairs = match_by_size(table, label=label, caliper=caliper)
    pair_of = dict(zip(pairs["positive"], pairs["pair"], strict=True))
    pair_of.update(zip(pairs["negative"], pairs["pair"], strict=True))
    subset = table.loc[list(pair_of)].copy()
    subset["pair"] = [pair_of[i] for i in subset.index]
    return subset.sort_values(["pair", label])
