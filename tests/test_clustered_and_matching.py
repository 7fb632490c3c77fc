"""The patient-clustered bootstrap and the size-matching rule, on cases with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrsr_utils.classification import size_matching
from cxrsr_utils.stats import bootstrap, clustered


def test_duplicated_patients_give_the_interval_of_the_patients_not_of_the_copies():
    """Each patient's value copied k times: the cluster bootstrap resamples patients, so its
    interval is the one of the k-times-smaller data (to the bit: the same draws, the same
    means); the image bootstrap treats the copies as independent and is about sqrt(k)
    narrower."""
    rng = np.random.default_rng(3)
    patient_values = rng.normal(0.0, 1.0, size=30)
    k = 4
    copies = np.repeat(patient_values, k)
    groups = np.repeat(np.arange(30), k)
    on_copies = bootstrap.clustered_mean_ci(copies, groups, n_resamples=4000)
    on_patients = bootstrap.clustered_mean_ci(patient_values, np.arange(30), n_resamples=4000)
    assert on_copies["ci_low"] == pytest.approx(on_patients["ci_low"], abs=1e-12)
    assert on_copies["ci_high"] == pytest.approx(on_patients["ci_high"], abs=1e-12)
    assert on_copies["patients"] == 30 and on_copies["n"] == 120
    naive = bootstrap.bootstrap_mean_ci(copies, n_resamples=4000)
    ratio = (on_copies["ci_high"] - on_copies["ci_low"]) / (naive["ci_high"] - naive["ci_low"])
    assert 1.6 < ratio < 2.4  # sqrt(4) = 2


def test_one_image_per_patient_is_the_image_bootstrap():
    """Singleton clusters: every replicate holds n images drawn uniformly with replacement."""
    draws = clustered.cluster_indices(["a", "b", "c", "d", "e"], n_resamples=2000, seed=1)
    assert all(len(d) == 5 for d in draws)
    counts = np.bincount(np.concatenate(draws), minlength=5)
    assert counts.min() > 0.9 * counts.mean()  # uniform over the images
    # Labels are numbered by first appearance: renaming the patients changes nothing.
    renamed = clustered.cluster_indices(["z", "y", "x", "w", "v"], n_resamples=2000, seed=1)
    assert all((a == b).all() for a, b in zip(draws, renamed, strict=True))


def test_a_patient_drawn_brings_all_its_images():
    groups = ["p1", "p1", "p1", "p2", "p3", "p3"]
    for draw in clustered.cluster_indices(groups, n_resamples=200, seed=0):
        drawn = list(draw)
        # Images 0-2 (p1) and 4-5 (p3) always come together, as often as their patient.
        assert drawn.count(0) == drawn.count(1) == drawn.count(2)
        assert drawn.count(4) == drawn.count(5)


def test_clustered_auc_difference_of_identical_forms_is_zero_width():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1] * 10, 2)
    s = rng.random(y.size) + 0.3 * y  # overlapping classes: AUC below 1
    groups = np.repeat(np.arange(20), 2)
    result = bootstrap.bootstrap_auc_difference(y, s, s, n_resamples=300, groups=groups)
    assert result["difference"] == 0 and result["ci_low"] == 0 == result["ci_high"]
    better = bootstrap.bootstrap_auc_difference(y, s + 2 * y, s, n_resamples=300, groups=groups)
    assert better["difference"] > 0 and better["ci_low"] >= 0


def _table(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["width", "height", "label"], index=[f"i{k}" for k in range(len(rows))]
    )


def test_size_matching_takes_the_closest_pairs_first_within_the_caliper():
    table = _table(
        [
            (1000, 1000, 1),  # i0: twin of i3 (distance 0)
            (1500, 1000, 1),  # i1: 2% from i4
            (3000, 3000, 1),  # i2: no normal image within the caliper
            (1000, 1000, 0),  # i3
            (1530, 1000, 0),  # i4
            (1010, 1000, 0),  # i5: close to i0, but i3 is closer and taken first
        ]
    )
    pairs = size_matching.match_by_size(table)
    assert list(zip(pairs["positive"], pairs["negative"], strict=True)) == [
        ("i0", "i3"),
        ("i1", "i4"),
    ]
    assert pairs["distance"].iloc[0] == 0 and pairs["distance"].iloc[1] == pytest.approx(
        np.log(1.02)
    )
    subset = size_matching.matched_subset(table)
    assert sorted(subset.index) == ["i0", "i1", "i3", "i4"]
    assert (subset.groupby("pair")["label"].sum() == 1).all()  # one of each class per pair
    # A tighter caliper keeps only the exact twins.
    assert len(size_matching.match_by_size(table, caliper=0.01)) == 1


def test_on_a_matched_subset_size_tells_the_classes_no_more():
    """Two classes of different size distributions: on all images a size rule separates them;
    on the matched subset, the size of a pair's two images is within the caliper."""
    rng = np.random.default_rng(5)
    normal = np.column_stack([rng.normal(1500, 300, 80), rng.normal(1300, 250, 80)])
    pneumonia = np.column_stack([rng.normal(1150, 300, 80), rng.normal(950, 250, 80)])
    sizes = np.vstack([normal, pneumonia]).clip(300).round()
    table = pd.DataFrame(
        {"width": sizes[:, 0], "height": sizes[:, 1], "label": [0] * 80 + [1] * 80}
    )
    from cxrsr_utils.stats.classifier_scores import roc_auc

    area = table["width"] * table["height"]
    assert roc_auc(table["label"], -area) > 0.75  # smaller image: pneumonia
    subset = size_matching.matched_subset(table)
    assert len(subset) >= 20
    matched_auc = roc_auc(subset["label"], -(subset["width"] * subset["height"]))
    assert abs(matched_auc - 0.5) < 0.15
    pairs = size_matching.match_by_size(table)
    assert (pairs["distance"] <= size_matching.CALIPER).all()
    assert pairs["positive"].is_unique and pairs["negative"].is_unique
