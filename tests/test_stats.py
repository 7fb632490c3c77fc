"""The statistics give known answers on constructed data, agree with the field's libraries, and
reproduce the committed quick tables from their committed inputs to the byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from sklearn.metrics import roc_auc_score

from cxrsr_utils.classification import steps as classify_steps
from cxrsr_utils.core.params import load_params
from cxrsr_utils.core.project import PROJECT_ROOT
from cxrsr_utils.evaluation import comparisons as sr_comparisons
from cxrsr_utils.evaluation import summaries as sr_summaries
from cxrsr_utils.reporting import files as report
from cxrsr_utils.stats import image_metrics as metrics
from cxrsr_utils.stats.bootstrap import (
    auc_difference_replicates,
    bootstrap_auc_difference,
    bootstrap_classification_ci,
    bootstrap_mean_ci,
)
from cxrsr_utils.stats.classifier_scores import (
    binary_cross_entropy,
    confusion_matrix,
    roc_auc,
    sensitivity_specificity,
)
from cxrsr_utils.stats.rounding import round_table
from cxrsr_utils.stats.significance import holm, mcnemar_exact, paired_test, tost_bootstrap

# -- per-image values: bootstrap of the mean, paired test -------------------------------------


def test_bootstrap_ci_of_a_constant_has_zero_width() -> None:
    assert bootstrap_mean_ci(np.full(20, 3.25)) == {
        "n": 20,
        "mean": 3.25,
        "ci_low": 3.25,
        "ci_high": 3.25,
    }


def test_bootstrap_ci_is_seeded_and_single_value_has_no_ci() -> None:
    values = np.random.default_rng(5).normal(size=30)
    assert bootstrap_mean_ci(values, seed=7) == bootstrap_mean_ci(values, seed=7)
    assert bootstrap_mean_ci(values, seed=7) != bootstrap_mean_ci(values, seed=8)
    single = bootstrap_mean_ci([2.0])
    assert single["mean"] == 2.0 and np.isnan(single["ci_low"]) and np.isnan(single["ci_high"])
    with pytest.raises(ValueError, match="NaN or infinite"):
        bootstrap_mean_ci([1.0, np.inf])


def test_bootstrap_ci_covers_the_true_mean_at_about_the_nominal_rate() -> None:
    rng = np.random.default_rng(2024)
    repeats, hits, widths = 200, 0, []
    for i in range(repeats):
        sample = rng.normal(loc=10.0, scale=2.0, size=50)
        ci = bootstrap_mean_ci(sample, n_resamples=2000, seed=i)
        assert ci["ci_low"] <= ci["mean"] <= ci["ci_high"]
        hits += ci["ci_low"] <= 10.0 <= ci["ci_high"]
        widths.append(ci["ci_high"] - ci["ci_low"])
    # Percentile bootstrap runs slightly under nominal at n = 50; 200 repeats give +-0.03.
    assert 0.88 <= hits / repeats <= 0.99
    # and the width is the normal theory's 2 * 1.96 * sigma / sqrt(n) = 1.109, roughly
    assert np.mean(widths) == pytest.approx(2 * 1.96 * 2.0 / np.sqrt(50), rel=0.1)


def test_paired_test_sign_and_direction() -> None:
    rng = np.random.default_rng(3)
    b = rng.normal(30, 2, size=40)
    a = b + 0.5 + rng.normal(0, 0.1, size=40)  # A better by 0.5 dB on every image
    row = paired_test(a, b, metric="psnr", name_a="esrgan", name_b="bicubic")
    assert row["favours"] == "esrgan"
    assert row["mean_diff"] == pytest.approx(np.mean(a - b))
    assert 0.4 < row["diff_ci_low"] < row["mean_diff"] < row["diff_ci_high"] < 0.6
    assert row["p_value"] < 1e-6 and row["n"] == 40
    swapped = paired_test(b, a, metric="psnr", name_a="bicubic", name_b="esrgan")
    assert swapped["mean_diff"] < 0 and swapped["favours"] == "esrgan"
    # Where lower is better (MSE): a larger A means B wins.
    lower = paired_test(a, b, metric="mse", name_a="x", name_b="y", higher_is_better=False)
    assert lower["favours"] == "y"
    tie = paired_test(b, b.copy())
    assert tie["favours"] == "tie" and tie["p_value"] == 1.0 and tie["mean_diff"] == 0.0


def test_paired_test_no_difference_is_not_significant() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, size=40), rng.normal(0, 1, size=40)
    row = paired_test(a, b)
    assert row["p_value"] > 0.05
    assert row["diff_ci_low"] < 0 < row["diff_ci_high"]


# -- labelled predictions ---------------------------------------------------------------------


def test_roc_auc_known_answers() -> None:
    # The textbook example (also scikit-learn's): 3 of 4 positive/negative pairs ordered right.
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5  # ties count one half
    assert roc_auc([0, 0, 1], [0.1, 0.2, 0.9]) == 1.0
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))


@pytest.mark.parametrize("n", [5, 20, 61, 500])
def test_roc_auc_is_the_exact_pair_count_and_scikit_learns_value(n: int) -> None:
    rng = np.random.default_rng(n)
    for decimals in (None, 1, 2):  # continuous scores, then many ties
        y = rng.integers(0, 2, n)
        y[:2] = (0, 1)
        s = rng.random(n) if decimals is None else np.round(rng.random(n), decimals)
        pairs = s[y == 1][:, None] - s[y == 0][None, :]
        # Half-integer counts sum exactly, so the brute-force mean is the correctly rounded
        # fraction: the tables' AUCs are that value to the last bit.
        assert roc_auc(y, s) == ((pairs > 0) + 0.5 * (pairs == 0)).mean()
        # scikit-learn integrates trapezoids; it may round the last bit differently.
        assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), rel=0, abs=4e-16)


def test_confusion_sensitivity_specificity() -> None:
    y = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    p = [0, 0, 0, 1, 1, 1, 1, 1, 0, 0]
    np.testing.assert_array_equal(confusion_matrix(y, p), [[3, 1], [2, 4]])
    np.testing.assert_array_equal(confusion_matrix([1, 1], [1, 1]), [[0, 0], [0, 2]])
    sens, spec = sensitivity_specificity(y, p)
    assert sens == pytest.approx(4 / 6) and spec == pytest.approx(3 / 4)
    sens, spec = sensitivity_specificity([1, 1], [1, 0])
    assert sens == 0.5 and np.isnan(spec)


def test_mcnemar_exact_known_p_value() -> None:
    # b = 1, c = 9 discordant pairs: two-sided exact p = 2 * (C(10,0) + C(10,1)) / 2**10.
    ref = np.array([True] * 1 + [False] * 9 + [True] * 20 + [False] * 5)
    other = np.array([False] * 1 + [True] * 9 + [True] * 20 + [False] * 5)
    b, c, p = mcnemar_exact(ref, other)
    assert (b, c) == (1, 9)
    assert p == pytest.approx(22 / 1024)
    assert mcnemar_exact(ref, ref) == (0, 0, 1.0)
    with pytest.raises(ValueError, match="paired"):
        mcnemar_exact(ref, other[:-1])


def test_binary_cross_entropy_matches_keras() -> None:
    import keras

    rng = np.random.default_rng(8)
    y = rng.integers(0, 2, 50).astype(np.float32)
    prob = np.concatenate([rng.random(48), [0.0, 1.0]]).astype(np.float32)  # clipped ends
    expected = float(np.mean(keras.losses.binary_crossentropy(y[:, None], prob[:, None])))
    assert binary_cross_entropy(y, prob) == pytest.approx(expected, rel=1e-5)


def test_bootstrap_classification_ci_covers_the_truth() -> None:
    rng = np.random.default_rng(9)
    n, true_acc = 400, 0.8
    y = rng.integers(0, 2, n)
    correct = rng.random(n) < true_acc
    prob = np.where(correct, y, 1 - y).astype(float)
    low, high = bootstrap_classification_ci(y, prob, metric="accuracy", n_resamples=1000)
    observed = correct.mean()
    assert low < true_acc < high and low < observed < high
    # Width agrees with the normal approximation of a binomial proportion.
    assert high - low == pytest.approx(2 * 1.96 * np.sqrt(0.8 * 0.2 / n), rel=0.15)
    assert bootstrap_classification_ci(y, prob, n_resamples=1000, seed=0) == (low, high)
    scores = y + rng.normal(0, 1.0, n)  # AUC = Phi(1 / sqrt(2)) for unit-gap normals
    true_auc = scipy_stats.norm.cdf(1 / np.sqrt(2))
    a_low, a_high = bootstrap_classification_ci(y, scores, metric="auc", n_resamples=500)
    assert a_low < true_auc < a_high
    assert a_low < roc_auc(y, scores) < a_high
    with pytest.raises(ValueError, match="Unknown metric"):
        bootstrap_classification_ci(y, prob, metric="f1")


def _normal_scores(rng: np.random.Generator, y: np.ndarray, noise: float) -> np.ndarray:
    # Class gap 1, normal noise: AUC = Phi(1 / (noise * sqrt(2))).
    return y + rng.normal(0, noise, len(y))


def test_auc_difference_ci_contains_the_true_difference() -> None:
    rng = np.random.default_rng(12)
    y = np.repeat([0, 1], 300)
    sharp, blurred = _normal_scores(rng, y, 0.6), _normal_scores(rng, y, 1.2)
    truth = scipy_stats.norm.cdf(1 / (0.6 * np.sqrt(2))) - scipy_stats.norm.cdf(
        1 / (1.2 * np.sqrt(2))
    )  # about 0.12
    result = bootstrap_auc_difference(y, blurred, sharp, n_resamples=1000, seed=3)
    assert result["ci_low"] < -truth < result["ci_high"] < 0  # blurred is worse, and shown so
    assert result["difference"] == pytest.approx(roc_auc(y, blurred) - roc_auc(y, sharp))
    assert (result["auc"], result["reference_auc"]) == (roc_auc(y, blurred), roc_auc(y, sharp))
    # Paired: the same resample scores both forms, so the interval of the difference is much
    # narrower than the two forms' own intervals side by side.
    own = [
        bootstrap_classification_ci(y, s, metric="auc", n_resamples=1000, seed=3)
        for s in (sharp, blurred)
    ]
    assert result["ci_high"] - result["ci_low"] < (own[0][1] - own[0][0]) + (own[1][1] - own[1][0])


def test_auc_difference_of_identical_forms_is_exactly_zero() -> None:
    rng = np.random.default_rng(13)
    y = rng.integers(0, 2, 40)
    scores = rng.random(40)
    result = bootstrap_auc_difference(y, scores, scores.copy(), n_resamples=300)
    assert (result["difference"], result["ci_low"], result["ci_high"]) == (0.0, 0.0, 0.0)
    replicates = auc_difference_replicates(y, scores, scores, n_resamples=300)
    assert replicates.shape == (300,) and np.nanmax(np.abs(replicates)) == 0
    # A strictly better form: every replicate is >= 0.
    better = np.where(y == 1, scores + 2, scores)
    assert np.nanmin(auc_difference_replicates(y, better, scores, n_resamples=300)) >= 0
    with pytest.raises(ValueError, match="one score per image"):
        bootstrap_auc_difference(y, scores, scores[:-1])


def test_tost_known_answers() -> None:
    # Replicates spread evenly over [-0.03, 0.03]: the 90% interval is [-0.027, 0.027].
    even = np.linspace(-0.03, 0.03, 1001)
    inside = tost_bootstrap(0.0, even, margin=0.05, alpha=0.05)
    assert inside["equivalent"] and inside["verdict"] == "equivalent"
    assert (inside["ci_low"], inside["ci_high"]) == pytest.approx((-0.027, 0.027))
    assert inside["p_lower"] == inside["p_upper"] == inside["p_tost"] == 0.0
    # The same replicates against a narrower margin: the CI crosses both margins.
    narrow = tost_bootstrap(0.0, even, margin=0.02)
    assert not narrow["equivalent"] and narrow["verdict"] == "inconclusive"
    assert narrow["p_tost"] == pytest.approx(np.mean(even >= 0.02))
    # A large loss: the whole CI is below -margin.
    worse = tost_bootstrap(-0.2, even - 0.2, margin=0.05)
    assert worse["verdict"] == "lower" and worse["p_lower"] == 1.0 and not worse["equivalent"]
    assert tost_bootstrap(0.2, even + 0.2, margin=0.05)["verdict"] == "higher"
    # One-sided: the lower test rejects (no loss beyond the margin: non-inferior), the upper
    # does not (a gain beyond the margin is not excluded), so no equivalence.
    shifted = tost_bootstrap(0.04, even + 0.04, margin=0.05)
    assert shifted["p_lower"] == 0.0 < 0.05 < shifted["p_upper"] == shifted["p_tost"]
    assert not shifted["equivalent"] and shifted["verdict"] == "inconclusive"
    # NaN replicates (resamples with one class) are dropped.
    assert tost_bootstrap(0.0, np.r_[even, np.nan], margin=0.05)["ci_low"] == inside["ci_low"]
    with pytest.raises(ValueError, match="margin"):
        tost_bootstrap(0.0, even, margin=0)


def test_tost_p_values_agree_with_normal_theory() -> None:
    # Replicates from N(0.01, 0.02): the one-sided p-values are normal tail areas.
    replicates = np.random.default_rng(14).normal(0.01, 0.02, 200_000)
    result = tost_bootstrap(0.01, replicates, margin=0.05, alpha=0.05)
    assert result["p_upper"] == pytest.approx(scipy_stats.norm.sf(2.0), abs=2e-3)
    assert result["p_lower"] == pytest.approx(scipy_stats.norm.cdf(-3.0), abs=5e-4)
    z = scipy_stats.norm.ppf(0.95)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx(
        (0.01 - z * 0.02, 0.01 + z * 0.02), abs=5e-4
    )
    assert result["equivalent"] and result["p_tost"] < 0.05


# -- families of tests, tables ----------------------------------------------------------------


def test_holm_on_the_textbook_example() -> None:
    # Holm (1979)'s procedure as Wikipedia's "Holm-Bonferroni method" works it: four tests,
    # sorted p = 0.005, 0.01, 0.03, 0.04 -> 4 * 0.005, 3 * 0.01, 2 * 0.03, max(0.06, 0.04).
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02], rtol=1e-12)
    assert list(adjusted <= 0.05) == [True, False, False, True]  # H1 and H4 rejected
    # Capped at 1; NaN (a test not run) is kept and not counted; one test is unadjusted.
    np.testing.assert_allclose(holm([0.5, np.nan, 0.4]), [0.8, np.nan, 0.8])
    assert holm([0.6, 0.7, 0.9]).tolist() == [1.0, 1.0, 1.0]
    assert holm([0.2]).tolist() == [0.2]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.5, 1.5])


def test_holm_is_bonferroni_at_the_smallest_p_and_never_below_the_raw_p() -> None:
    p = np.random.default_rng(11).random(12) ** 3
    adjusted = holm(p)
    assert adjusted[np.argmin(p)] == pytest.approx(min(1.0, 12 * p.min()))
    assert (adjusted >= p).all() and (adjusted <= np.minimum(1, 12 * p) + 1e-15).all()
    order = np.argsort(p)
    assert (np.diff(adjusted[order]) >= 0).all()  # the step-down keeps the order


def test_round_table_by_metric_and_p_values_to_significant_figures() -> None:
    table = pd.DataFrame(
        {
            "metric": ["psnr", "ssim", "other"],
            "n": [3, 3, 3],
            "mean": [30.123456, 0.912345678, 1.23456789],
            "wilcoxon_statistic": [10.5, 4.0, 2.0],
            "p_value": [0.000123456, 0.5, 1.0],
        }
    )
    rounded = round_table(table, metrics.DIGITS)
    assert rounded["mean"].tolist() == [30.12, 0.9123, 1.2346]  # 2, 4, default 4 decimals
    assert rounded["p_value"].tolist() == [0.000123, 0.5, 1.0]
    assert rounded["wilcoxon_statistic"].tolist() == [10.5, 4.0, 2.0]
    assert rounded["n"].tolist() == [3, 3, 3]
    assert table["mean"][0] == 30.123456  # a copy: the input is untouched
    flat = round_table(table.drop(columns="metric").assign(mcnemar_p=[0.00390625, 0.25, 1.0]))
    assert flat["mean"].tolist() == [30.123, 0.912, 1.235]
    assert flat["mcnemar_p"].tolist() == [0.00391, 0.25, 1.0]
    with pytest.raises(ValueError, match="'metric' column"):
        round_table(table.drop(columns="metric"), metrics.DIGITS)


# -- the committed quick tables, recomputed from their committed inputs -----------------------
# Same inputs, same code path, same seeds: the bytes must match. A refactor that changes a
# draw, an operation's order or a rounding fails here before the study is rerun.

TABLES = PROJECT_ROOT / "reports" / "quick" / "tables"


def _same_bytes(table: pd.DataFrame, name: str, tmp_path: Path) -> None:
    report.save_table(table, tmp_path, name)
    for suffix in (".csv", ".md"):
        made, committed = tmp_path / f"{name}{suffix}", TABLES / f"{name}{suffix}"
        assert made.read_text() == committed.read_text(), f"{committed.name} would change"


def test_notebook_04_statistics_reproduce_the_committed_tables(tmp_path: Path) -> None:
    # From the committed per-image scores and statistics plan, notebook 04's code makes the
    # committed summary and paired tests again, to the byte.
    params = load_params("quick", {})
    per_image = pd.read_csv(TABLES / "04_per_image.csv")
    summary = sr_summaries.summary(per_image, params)
    _same_bytes(round_table(summary, metrics.DIGITS), "04_summary", tmp_path)
    plan = pd.read_csv(TABLES / "04_statistics_plan.csv")
    committed = pd.read_csv(TABLES / "04_paired_tests.csv")
    gaps = dict(zip(committed.method_a, committed.a_differs_from_paper, strict=True))
    paired = sr_comparisons.paired_table(per_image, plan, params, gaps)
    _same_bytes(paired, "04_paired_tests", tmp_path)


def test_notebook_05_statistics_reproduce_the_committed_table(tmp_path: Path) -> None:
    params = load_params("quick", {})
    # the original form has no condition or method: empty cells, as the notebook wrote them
    text = {c: str for c in ("form", "kind", "condition", "method")}
    predictions = pd.read_csv(TABLES / "05_predictions.csv", dtype=text, keep_default_na=False)
    summary = classify_steps.summarize(predictions, params)
    _same_bytes(summary, "05_forms_summary", tmp_path)
