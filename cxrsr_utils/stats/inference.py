"""The study's statistics: bootstrap intervals, paired tests, McNemar, Holm, and the
classification scores (loss, ROC AUC, confusion counts) of notebook 05.

Over per-image values (notebook 04, via :mod:`cxrsr_utils.stats.image_metrics`' tables):
:func:`bootstrap_mean_ci` (mean with a percentile-bootstrap CI, ``scipy.stats.bootstrap``) and
:func:`paired_test` (two methods on the same images: Wilcoxon signed-rank plus the mean paired
difference with its CI).

Over labelled predictions (notebook 05, via :mod:`cxrsr_utils.classification.forms`):
:func:`binary_cross_entropy`, :func:`roc_auc`, :func:`confusion_matrix`,
:func:`sensitivity_specificity`, :func:`bootstrap_classification_ci` (accuracy or AUC, with the
same resampled images for every form), :func:`mcnemar_exact` (paired correct/incorrect
outcomes), :func:`bootstrap_auc_difference` (the paired CI of one form's AUC minus another's)
and :func:`tost_bootstrap` (two one-sided tests of equivalence within a declared margin).

Across tests: :func:`holm` (Holm's step-down adjustment of a family of p-values). For tables:
:func:`round_table` (rounding for stable printing and diffs).

Every resampling is seeded, so a table recomputed from the same inputs is the same to the bit.
The two bootstraps draw differently (scipy's resampler for means; one index matrix shared by
all forms for classification scores) and are kept so: the committed tables were made with them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from cxrsr_utils.core import repro

# Keras clips probabilities to [eps, 1 - eps] in binary cross-entropy; we use the same value so
# the loss computed from saved probabilities matches the one Keras reports.
KERAS_EPSILON = 1e-7


# --------------------------------------------------------------------------------------------
# Per-image values: bootstrap of the mean, paired comparison of two methods
# --------------------------------------------------------------------------------------------


def _finite_values(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
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
    array = _finite_values(values, "bootstrap_mean_ci")
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


def paired_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    metric: str = "psnr",
    name_a: str = "a",
    name_b: str = "b",
    higher_is_better: bool = True,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int | np.random.Generator = 0,
) -> dict[str, object]:
    """Compare method A with method B on the same images (``a[i]``, ``b[i]``: image i).

    Two-sided Wilcoxon signed-rank test on the differences ``a - b``
    (``scipy.stats.wilcoxon``, zero differences dropped, exact p-value for small n without
    ties) and the mean difference with a percentile-bootstrap CI. ``favours`` names the method
    with the better mean given ``higher_is_better`` (for ``metric``, which only labels the
    row), or ``"tie"``; it says nothing about significance, the p-value does. Returns one tidy
    row as a dict.
    """
    a = _finite_values(a, f"paired_test {name_a}")
    b = _finite_values(b, f"paired_test {name_b}")
    if a.shape != b.shape:
        raise ValueError(f"paired_test needs one value per image for both: {a.size} vs {b.size}.")
    diff = a - b
    if np.all(diff == 0):
        # scipy returns p = 1 here too but warns (0/0); say it without the warning.
        statistic, p_value = 0.0, 1.0
    else:
        test = stats.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided")
        statistic, p_value = float(test.statistic), float(test.pvalue)
    ci = bootstrap_mean_ci(diff, confidence=confidence, n_resamples=n_resamples, seed=seed)
    mean_diff = ci["mean"]
    if mean_diff == 0:
        favours = "tie"
    else:
        favours = name_a if (mean_diff > 0) == higher_is_better else name_b
    return {
        "metric": metric,
        "method_a": name_a,
        "method_b": name_b,
        "n": int(a.size),
        "mean_a": float(a.mean()),
        "mean_b": float(b.mean()),
        "mean_diff": mean_diff,
        "diff_ci_low": ci["ci_low"],
        "diff_ci_high": ci["ci_high"],
        "median_diff": float(np.median(diff)),
        "wilcoxon_statistic": statistic,
        "p_value": p_value,
        "favours": favours,
    }


# --------------------------------------------------------------------------------------------
# Labelled predictions: loss, AUC, confusion counts
# --------------------------------------------------------------------------------------------


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


def mcnemar_exact(reference_correct: Any, other_correct: Any) -> tuple[int, int, float]:
    """McNemar's exact test on paired correct/incorrect outcomes of the same images.

    Only the discordant pairs carry information: ``b`` images the reference got right and the
    other form wrong, ``c`` the reverse. Under H0 (equal accuracy) b ~ Binomial(b + c, 1/2);
    the p-value is scipy's two-sided exact binomial test. Returns (b, c, p); p = 1 when there
    are no discordant pairs.
    """
    ref = np.asarray(reference_correct).astype(bool)
    other = np.asarray(other_correct).astype(bool)
    if ref.shape != other.shape:
        raise ValueError(
            f"McNemar needs paired outcomes; got shapes {ref.shape} and {other.shape}."
        )
    b = int((ref & ~other).sum())
    c = int((~ref & other).sum())
    p = stats.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue if b + c else 1.0
    return b, c, float(p)


def auc_difference_replicates(
    labels: Any, scores: Any, reference_scores: Any, *, n_resamples: int = 2000, seed: int = 0
) -> np.ndarray:
    """Bootstrap replicates of AUC(``scores``) - AUC(``reference_scores``) on the same images.

    Paired: each replicate resamples the images once (the index matrix of
    :func:`bootstrap_classification_ci`, so the same resamples as the forms' own AUC intervals)
    and scores both forms on that one resample. Replicates whose resample holds a single class
    have no AUC and are NaN.
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
    idx = _bootstrap_indices(len(y), n_resamples, seed)
    return np.array([roc_auc(y[i], a[i]) - roc_auc(y[i], b[i]) for i in idx])


def bootstrap_auc_difference(
    labels: Any,
    scores: Any,
    reference_scores: Any,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """AUC(``scores``) - AUC(``reference_scores``) with a paired percentile-bootstrap CI.

    Both forms are scored on the same resampled images (:func:`auc_difference_replicates`);
    identical forms give a zero-width interval at 0. Returns ``{"auc", "reference_auc",
    "difference", "ci_low", "ci_high"}`` (NaN bounds when no resample holds both classes).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    replicates = auc_difference_replicates(
        labels, scores, reference_scores, n_resamples=n_resamples, seed=seed
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


def tost_bootstrap(
    estimate: float, replicates: Any, *, margin: float, alpha: float = 0.05
) -> dict[str, Any]:
    """Equivalence by two one-sided tests (TOST, Schuirmann 1987), percentile-bootstrap form.

    The two null hypotheses are "the difference is <= -``margin``" and "the difference is >=
    +``margin``"; equivalence is declared when both are rejected at level ``alpha``. In its
    confidence-interval form, used here, that is: the (1 - 2 ``alpha``) percentile-bootstrap
    interval of the difference (e.g. 90% for alpha 0.05) lies strictly inside (-margin,
    +margin). ``replicates`` are bootstrap replicates of the difference (e.g.
    :func:`auc_difference_replicates`; NaN ones are dropped); ``estimate`` is the difference
    on the data, reported as it is.

    Returns ``estimate``, ``margin``, ``alpha``, ``ci_low``/``ci_high`` (the 1 - 2 alpha
    interval), ``p_lower`` and ``p_upper`` (the bootstrap p-values of the two one-sided tests:
    the share of replicates at or beyond -margin, and at or beyond +margin), ``p_tost`` (their
    maximum), ``equivalent`` (the CI rule) and ``verdict``: "equivalent" (the CI inside the
    margins), "lower" / "higher" (the CI wholly below -margin / above +margin: a difference
    larger than the margin) or "inconclusive" (the CI crosses a margin: neither equivalence
    nor a difference beyond the margin is shown).
    """
    if margin <= 0:
        raise ValueError(f"the equivalence margin must be > 0, got {margin}.")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}.")
    values = np.asarray(replicates, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    low, high = percentile_interval(values, 1 - 2 * alpha)
    if values.size:
        p_lower = float(np.mean(values <= -margin))
        p_upper = float(np.mean(values >= margin))
    else:
        p_lower = p_upper = float("nan")
    equivalent = bool(-margin < low and high < margin)
    if equivalent:
        verdict = "equivalent"
    elif high < -margin:
        verdict = "lower"
    elif low > margin:
        verdict = "higher"
    else:
        verdict = "inconclusive"
    return {
        "estimate": float(estimate),
        "margin": float(margin),
        "alpha": float(alpha),
        "ci_low": low,
        "ci_high": high,
        "p_lower": p_lower,
        "p_upper": p_upper,
        "p_tost": max(p_lower, p_upper),
        "equivalent": equivalent,
        "verdict": verdict,
    }


# --------------------------------------------------------------------------------------------
# Families of tests, and tables
# --------------------------------------------------------------------------------------------


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979), in the order given.

    With the m p-values sorted ascending, the i-th (from 0) becomes ``(m - i) * p``, made
    non-decreasing along the sorted order and capped at 1; rejecting where the adjusted value
    is <= alpha controls the family-wise error rate at alpha without assuming independence.
    NaN entries (a test not run, e.g. the reference form's McNemar) stay NaN and are not
    counted in m. (``scipy.stats`` has Benjamini-Hochberg but not Holm.)
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"holm takes a 1-D sequence of p-values, got shape {p.shape}.")
    finite = ~np.isnan(p)
    if ((p[finite] < 0) | (p[finite] > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p[finite].tolist()}.")
    out = np.full_like(p, np.nan)
    tested = p[finite]
    order = np.argsort(tested, kind="stable")
    m = tested.size
    stepped = np.maximum.accumulate((m - np.arange(m)) * tested[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    out[finite] = adjusted
    return out


def _is_p_value(column: str) -> bool:
    return column in ("p_value", "p_holm") or column.endswith("_p")


def round_table(
    table: pd.DataFrame,
    digits: int | Mapping[str, int] = 3,
    *,
    default_digits: int = 4,
    p_significant: int = 3,
) -> pd.DataFrame:
    """A copy with float columns rounded, for printing and for diffs that do not churn.

    ``digits`` is the number of decimals of every float column, or a mapping from metric to
    decimals for a long table with a ``metric`` column (such as
    :mod:`cxrsr_utils.stats.image_metrics`'
    summary and comparison tables: each row rounded by its metric, ``default_digits`` for
    metrics not in the mapping). P-value columns (``p_value``, ``p_holm``, ``*_p``) keep
    ``p_significant`` significant figures instead, so small p-values are not rounded to 0.
    """
    out = table.copy()
    floats = [c for c in out.columns if pd.api.types.is_float_dtype(out[c])]
    values = [c for c in floats if not _is_p_value(str(c))]
    if isinstance(digits, Mapping):
        if "metric" not in out.columns:
            raise ValueError("Per-metric digits need a 'metric' column (a long table).")
        for metric, index in out.groupby("metric", sort=False).groups.items():
            out.loc[index, values] = out.loc[index, values].round(
                digits.get(metric, default_digits)
            )
    else:
        out[values] = out[values].round(digits)
    for column in floats:
        if _is_p_value(str(column)):
            out[column] = [float(f"{p:.{p_significant}g}") for p in out[column]]
    return out
