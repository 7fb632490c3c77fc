"""Significance: the paired tests of the study and the adjustment of a family of p-values.

:func:`paired_test` (two SR methods on the same images, notebook 04: Wilcoxon signed-rank plus
the mean paired difference with its bootstrap CI), :func:`mcnemar_exact` (two classifier forms'
paired correct/incorrect outcomes, notebook 05), :func:`tost_bootstrap` (two one-sided tests of
equivalence within a declared margin, from bootstrap replicates) and :func:`holm` (Holm's
step-down adjustment of a family of p-values).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from cxrsr_utils.stats.bootstrap import bootstrap_mean_ci, finite_values, percentile_interval


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
    a = finite_values(a, f"paired_test {name_a}")
    b = finite_values(b, f"paired_test {name_b}")
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
