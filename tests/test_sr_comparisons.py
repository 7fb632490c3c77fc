"""Notebook 04's statistics plan: one declared primary comparison, Holm over the secondary
ones, the headline that states the primary whatever its sign; and the summaries and figures
built on the same per-image table."""

import numpy as np
import pandas as pd
import pytest

from cxrsr_utils.core.layout import EVAL_CONDITIONS
from cxrsr_utils.core.params import load_params
from cxrsr_utils.evaluation import comparisons as sr_comparisons
from cxrsr_utils.evaluation import labels
from cxrsr_utils.evaluation import methods as eval_methods
from cxrsr_utils.evaluation import summaries as sr_summaries
from cxrsr_utils.reporting import metric_figures
from cxrsr_utils.sr import infer
from cxrsr_utils.sr.upscaler import load_model
from cxrsr_utils.stats import significance

NETWORKS = ["pretrained", "finetuned:l1", "finetuned:paper"]
METHODS = ["bicubic", "lanczos", *NETWORKS]


def _methods(names=METHODS):
    model = load_model("bicubic", infer.InferOptions(progress=False))
    return [
        eval_methods.Method(n, "resize" if n in ("bicubic", "lanczos") else "network", model, "x")
        for n in names
    ]


def _scores(n_images: int = 10, seed: int = 3) -> pd.DataFrame:
    """A per-image table of run_methods' form: each method k a bit better than the last."""
    rng = np.random.default_rng(seed)
    rows = []
    for dataset in ("kermany", "nih"):
        for condition in EVAL_CONDITIONS:
            base = rng.normal(30, 2, n_images)
            for k, method in enumerate(METHODS):
                for i in range(n_images):
                    rows.append(
                        {
                            "dataset": dataset,
                            "condition": condition,
                            "image": f"{i}.png",
                            "label": pd.NA,
                            "method": method,
                            "psnr": base[i] + 0.3 * k + 0.2 * rng.normal(),
                            "ssim": 0.8 + 0.01 * k + 0.005 * rng.normal(),
                            "mse": 0.001 * rng.random(),
                            "lr_psnr": 40 - k + rng.normal(),
                        }
                    )
    return pd.DataFrame(rows)


def test_the_plan_has_one_primary_row_and_it_is_the_declared_comparison():
    ev = load_params("quick").evaluate
    plan = sr_comparisons.declared_plan(ev, _methods(), "paper")
    assert list(plan.columns) == sr_comparisons.PLAN_COLUMNS
    primary = plan[plan.role == "primary"]
    assert len(primary) == 1 and primary.index[0] == 0
    assert primary.iloc[0][1:].tolist() == ["nih", "bicubic", "psnr", "finetuned:paper", "lanczos"]
    secondary = plan[plan.role == "secondary"]
    # 3 network methods x 2 baselines x 2 metrics x 2 data sets x 2 conditions, less the primary
    assert len(secondary) == 3 * 2 * 2 * 2 * 2 - 1
    assert set(secondary.method_a) == set(NETWORKS) and set(secondary.method_b) == {
        "lanczos",
        "bicubic",
    }
    assert not plan.duplicated(sr_comparisons.PLAN_COLUMNS[1:]).any()
    assert set(zip(plan.dataset, plan.condition, strict=True)) == {
        (d, c) for d in ("nih", "kermany") for c in EVAL_CONDITIONS
    }
    # the plan follows the profile, never a score: pretrained as a baseline is not compared
    # with itself
    ev2 = ev.model_copy(update={"secondary_baselines": ("pretrained",), "primary_metric": "ssim"})
    plan2 = sr_comparisons.declared_plan(ev2, _methods(), "l1")
    assert plan2.iloc[0].tolist()[3:] == ["ssim", "finetuned:l1", "lanczos"]
    assert not (plan2.method_a == plan2.method_b).any()
    with pytest.raises(ValueError, match="not among the methods"):
        sr_comparisons.declared_plan(ev, _methods(), "matched")


def test_plan_statement_is_the_profiles_plan_in_words():
    text = sr_comparisons.plan_statement(load_params("quick").evaluate)
    assert text.startswith("Primary: the fine-tuned variant chosen on validation PSNR vs lanczos")
    assert "PSNR, NIH held-out test" in text and "condition bicubic" in text
    assert "Holm-corrected together, alpha 0.05" in text and "Wilcoxon" in text


def test_paired_table_primary_row_and_holm_column():
    params = load_params("quick", {"evaluate.n_bootstrap": 200, "seed": 5})
    per_image = _scores()
    plan = sr_comparisons.declared_plan(params.evaluate, _methods(), "paper")
    gaps = {"finetuned:paper": "no VGG19 perceptual loss"}
    paired = sr_comparisons.paired_table(per_image, plan, params, gaps)
    pd.testing.assert_frame_equal(
        paired[sr_comparisons.PLAN_COLUMNS], plan[sr_comparisons.PLAN_COLUMNS]
    )
    assert paired.columns.get_loc("p_holm") == paired.columns.get_loc("p_value") + 1
    # the primary row is the declared test on the primary's images, unadjusted
    row = sr_comparisons.primary_row(paired)
    part = per_image[(per_image.dataset == "nih") & (per_image.condition == "bicubic")]
    a = part[part.method == "finetuned:paper"].psnr.to_numpy()
    b = part[part.method == "lanczos"].psnr.to_numpy()
    direct = significance.paired_test(a, b, n_resamples=200, seed=5)
    assert row.mean_diff == round(direct["mean_diff"], 2)
    assert row.p_value == float(f"{direct['p_value']:.3g}") and row.p_holm == row.p_value
    assert row.a_differs_from_paper == "no VGG19 perceptual loss"
    # Holm over the secondary family only
    sec = paired[paired.role == "secondary"]
    np.testing.assert_allclose(sec.p_holm, significance.holm(sec.p_value.to_numpy()), rtol=0.01)
    assert (sec.p_holm >= sec.p_value).all()
    assert (paired.significant == (paired.p_holm <= 0.05)).all()
    with pytest.raises(ValueError, match="exactly one primary"):
        sr_comparisons.paired_table(per_image, plan[plan.role == "secondary"], params)


def test_holm_column_on_the_textbook_example(monkeypatch):
    # Four secondary tests with p = 0.01, 0.04, 0.03, 0.005: Holm gives 0.03, 0.06, 0.06, 0.02
    # (stats' test works the same example); the primary, alone, keeps its p = 0.2.
    p_values = iter([0.2, 0.01, 0.04, 0.03, 0.005])

    def fake(per_image, method_a, method_b, **kwargs):
        return pd.DataFrame(
            [{"dataset": "nih", "condition": "bicubic", "metric": "psnr", "method_a": method_a,
              "method_b": method_b, "n": 5, "mean_diff": 0.1, "p_value": next(p_values),
              "favours": method_a}]
        )  # fmt: skip

    monkeypatch.setattr(sr_comparisons.metrics, "compare_methods", fake)
    plan = pd.DataFrame(
        [("primary", "nih", "bicubic", "psnr", "finetuned:paper", "lanczos")]
        + [("secondary", "nih", "bicubic", "psnr", m, "bicubic") for m in "abcd"],
        columns=sr_comparisons.PLAN_COLUMNS,
    )
    scores = pd.DataFrame(columns=["dataset", "condition"])  # compare_methods is the fake
    paired = sr_comparisons.paired_table(scores, plan, load_params("quick"))
    np.testing.assert_allclose(paired.p_holm, [0.2, 0.03, 0.06, 0.06, 0.02])
    assert paired.significant.tolist() == [False, True, False, False, True]


def test_primary_result_is_stated_whatever_its_sign():
    ev = load_params("quick").evaluate
    row = {
        "role": "primary",
        "dataset": "nih",
        "condition": "bicubic",
        "metric": "psnr",
        "method_a": "finetuned:paper",
        "method_b": "lanczos",
        "n": 16,
        "mean_diff": -0.42,
        "diff_ci_low": -0.61,
        "diff_ci_high": -0.25,
        "p_value": 0.0004,
        "favours": "lanczos",
    }
    worse = sr_comparisons.primary_result(pd.DataFrame([row]), ev)
    assert "finetuned:paper minus lanczos in PSNR" in worse
    assert "mean difference -0.42 dB, 95% CI [-0.61, -0.25] dB" in worse
    assert "p = 0.0004 (n = 16 images)" in worse and "lanczos is better" in worse
    tie = {**row, "mean_diff": 0.05, "diff_ci_low": -0.1, "diff_ci_high": 0.2, "p_value": 0.4}
    text = sr_comparisons.primary_result(pd.DataFrame([tie]), ev)
    assert "+0.05 dB" in text and "not significant at alpha 0.05" in text
    with pytest.raises(ValueError, match="one primary"):
        sr_comparisons.primary_result(pd.DataFrame([row, row]), ev)


def test_differences_to_lanczos_are_per_image_and_paired():
    per_image = _scores(n_images=4)
    diffs = sr_comparisons.differences_to(per_image, "lanczos", "psnr")
    assert "lanczos" not in set(diffs.method)
    assert list(dict.fromkeys(diffs.method)) == ["bicubic", *NETWORKS]
    key = per_image.set_index(["dataset", "condition", "image", "method"]).psnr
    for r in diffs.sample(10, random_state=0).itertuples():
        expected = key[(r.dataset, r.condition, r.image, r.method)]
        expected -= key[(r.dataset, r.condition, r.image, "lanczos")]
        assert r.difference == pytest.approx(expected)
    with pytest.raises(ValueError, match="baseline"):
        sr_comparisons.differences_to(per_image, "nearest")


def test_paired_figure_joins_each_image_and_has_units():
    per_image = labels.with_labels(_scores(n_images=4))
    diffs = sr_comparisons.differences_to(per_image, "lanczos", "psnr")
    fig = metric_figures.paired_differences(per_image, diffs, note="variant lacks: x")
    assert len(fig.axes) == 2 * 4  # distributions | differences, per data set and condition
    left, right = fig.axes[0], fig.axes[1]
    assert left.get_xlabel() == "PSNR (dB)"
    assert right.get_xlabel() == "PSNR minus lanczos on the same image (dB)"
    # one line per image across the methods, one mean bar per method
    n_methods = len(METHODS) - 1
    assert len(right.lines) == 4 + n_methods + 1  # + the zero line
    assert labels.DATASET_LABELS["kermany"] in left.get_title()
    dist = metric_figures.metric_distributions(per_image, metrics=("psnr", "ssim"), note="x")
    assert [ax.get_xlabel() for ax in dist.axes[::4]] == ["PSNR (dB)", "SSIM (unitless, 0-1)"]
    assert len(dist.axes) == 2 * 4


def test_summaries_per_data_set_condition_and_method():
    params = load_params("quick", {"evaluate.n_bootstrap": 200})
    per_image = _scores(n_images=5)
    summary = sr_summaries.summary(per_image, params)
    assert summary.groupby(["dataset", "condition", "method"]).ngroups == 2 * 2 * len(METHODS)
    gaps = {"finetuned:paper": "no GAN loss"}
    wide = sr_summaries.wide_summary(summary, gaps)
    assert list(wide.columns[:3]) == ["dataset", "condition", "method"]
    assert wide.method.tolist()[:5] == ["bicubic", "lanczos", "pretrained", *NETWORKS[1:]]
    assert wide.set_index("method").loc["finetuned:paper", "differs from paper"].iloc[0] == (
        "no GAN loss"
    )
    assert "PSNR (dB)" in wide.columns
    text = sr_summaries.headline(summary, "finetuned:paper")
    assert text.count("finetuned:paper (chosen on validation)") == 4
    assert "dB vs bicubic" in text
