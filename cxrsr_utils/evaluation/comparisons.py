"""Notebook 04's statistics plan and its paired tests, declared before any result.

The plan (:func:`declared_plan`) follows from the profile (``params.evaluate``) and the variant
chosen on validation (:func:`cxrsr_utils.finetune.model_card.chosen_variant`), never from a test
score:

- **primary**: the chosen variant against ``primary_baseline`` (Lanczos) in
  ``primary_metric`` (PSNR) on ``primary_dataset`` (the held-out NIH test split) in
  ``primary_condition`` (the paper's bicubic x4 LR). One test, reported whatever its sign
  (:func:`primary_result`);
- **secondary**: every network method against each of ``secondary_baselines`` in each of
  ``secondary_metrics``, on both data sets and both conditions (the primary row left out),
  Holm-corrected together (:func:`cxrsr_utils.stats.significance.holm`).

Each test (:func:`paired_table`) is :func:`cxrsr_utils.stats.significance.paired_test` on the same
images:
the mean paired difference with its bootstrap CI and a two-sided Wilcoxon signed-rank test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from cxrsr_utils.core.layout import EVAL_CONDITIONS
from cxrsr_utils.core.params import Params
from cxrsr_utils.core.params_networks import EvaluateParams
from cxrsr_utils.core.vocabulary import finetuned_method
from cxrsr_utils.evaluation.labels import EVAL_SPLITS, condition_label, dataset_label
from cxrsr_utils.evaluation.methods import Method, method_rank
from cxrsr_utils.stats import image_metrics as metrics
from cxrsr_utils.stats import rounding, significance

ROLES = ("primary", "secondary")
PLAN_COLUMNS = ["role", "dataset", "condition", "metric", "method_a", "method_b"]
# The columns of the paired table a reader needs first (the rest is in the saved table).
PAIRED_VIEW = (
    "role",
    "dataset",
    "condition",
    "metric",
    "method_a",
    "method_b",
    "n",
    "mean_diff",
    "diff_ci_low",
    "diff_ci_high",
    "p_value",
    "p_holm",
)
UNITS = {"psnr": " dB", "lr_psnr": " dB"}


def plan_statement(ev: EvaluateParams) -> str:
    """The plan in words, from the profile alone (what notebook 04 prints before results)."""
    return (
        f"Primary: the fine-tuned variant chosen on validation PSNR vs {ev.primary_baseline}, "
        f"{ev.primary_metric.upper()}, {dataset_label(ev.primary_dataset)}, condition "
        f"{ev.primary_condition}. Secondary (Holm-corrected together, alpha {ev.alpha:g}): "
        f"every network method vs {' and vs '.join(ev.secondary_baselines)}, "
        f"{' and '.join(m.upper() for m in ev.secondary_metrics)}, data sets "
        f"{', '.join(EVAL_SPLITS)}, conditions {', '.join(EVAL_CONDITIONS)}. Each: mean paired "
        f"difference with a {ev.confidence:.0%} bootstrap CI ({ev.n_bootstrap} resamples) and "
        "a two-sided Wilcoxon signed-rank test."
    )


def _first(options: Sequence[str], first: str) -> list[str]:
    return [first, *(o for o in options if o != first)]


def declared_plan(ev: EvaluateParams, methods: Sequence[Method], chosen: str) -> pd.DataFrame:
    """Every comparison of the study, before any is made: one primary row (``finetuned:``
    ``chosen`` vs ``ev.primary_baseline``), then the secondary ones (each network method of
    ``methods`` vs each secondary baseline, metric, data set and condition; a method is not
    compared with itself, and the primary row is not repeated). Columns :data:`PLAN_COLUMNS`.
    """
    networks = sorted((m.name for m in methods if m.kind == "network"), key=method_rank)
    primary_method = finetuned_method(chosen)
    if primary_method not in networks:
        raise ValueError(f"The chosen variant {chosen!r} is not among the methods {networks}.")
    primary = (
        ev.primary_dataset,
        ev.primary_condition,
        ev.primary_metric,
        primary_method,
        ev.primary_baseline,
    )
    rows: list[tuple[str, ...]] = [("primary", *primary)]
    for dataset in _first(list(EVAL_SPLITS), ev.primary_dataset):
        for condition in _first(list(EVAL_CONDITIONS), ev.primary_condition):
            for metric in ev.secondary_metrics:
                for method in networks:
                    for baseline in ev.secondary_baselines:
                        row = (dataset, condition, metric, method, baseline)
                        if method != baseline and row != primary:
                            rows.append(("secondary", *row))
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)


def paired_table(
    per_image: pd.DataFrame,
    plan: pd.DataFrame,
    params: Params,
    gaps: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Each comparison of ``plan`` on ``per_image``'s scores (:func:`run_methods`' table):
    :func:`cxrsr_utils.stats.significance.paired_test` of method_a vs method_b on the images of the
    row's
    data set and condition, with ``p_holm`` (Holm's adjustment within the row's role: the
    primary, alone in its family, keeps its p-value), ``significant`` (``p_holm`` at
    ``params.evaluate.alpha``) and what method_a lacks against the paper (``gaps``).

    Bootstraps draw from ``params.seed``; the table is rounded as the study's tables are.
    """
    ev = params.evaluate
    if (plan["role"] == "primary").sum() != 1:
        raise ValueError("A statistics plan has exactly one primary comparison.")
    rows = []
    for r in plan.itertuples():
        part = per_image[
            (per_image["dataset"] == r.dataset) & (per_image["condition"] == r.condition)
        ]
        test = metrics.compare_methods(
            part,
            r.method_a,
            r.method_b,
            metrics=[r.metric],
            by=("dataset", "condition"),
            confidence=ev.confidence,
            n_resamples=ev.n_bootstrap,
            seed=params.seed,
        )
        rows.append({"role": r.role, **test.iloc[0].to_dict()})
    table = pd.DataFrame(rows)
    table["p_holm"] = np.nan
    for role in ROLES:
        family = table["role"] == role
        if family.any():
            table.loc[family, "p_holm"] = significance.holm(table.loc[family, "p_value"].to_numpy())
    table["significant"] = table["p_holm"] <= ev.alpha
    if gaps is not None:
        table["a_differs_from_paper"] = table["method_a"].map(lambda m: gaps.get(m, ""))
    columns = [*PLAN_COLUMNS, *(c for c in table.columns if c not in PLAN_COLUMNS)]
    p_at = columns.index("p_value") + 1
    columns.remove("p_holm")
    columns.insert(p_at, "p_holm")
    return rounding.round_table(table[columns], metrics.DIGITS)


def primary_row(paired: pd.DataFrame) -> pd.Series:
    """The one primary row of :func:`paired_table`'s table."""
    rows = paired[paired["role"] == "primary"]
    if len(rows) != 1:
        raise ValueError(f"Expected one primary comparison, found {len(rows)}.")
    return rows.iloc[0]


def primary_result(paired: pd.DataFrame, ev: EvaluateParams) -> str:
    """The primary comparison in one sentence, with its CI and p-value, whatever its sign."""
    r = primary_row(paired)
    unit = UNITS.get(str(r.metric), "")
    if r.p_value < ev.alpha:
        verdict = f"significant at alpha {ev.alpha:g}: {r.favours} is better"
    else:
        verdict = f"not significant at alpha {ev.alpha:g}"
    return (
        f"Primary comparison (declared before the results): {r.method_a} minus "
        f"{r.method_b} in {str(r.metric).upper()} on {dataset_label(str(r.dataset))}, "
        f"{condition_label(str(r.condition))}: mean difference {r.mean_diff:+.2f}{unit}, "
        f"{ev.confidence:.0%} CI [{r.diff_ci_low:+.2f}, {r.diff_ci_high:+.2f}]{unit}, "
        f"Wilcoxon p = {r.p_value:.3g} (n = {int(r.n)} images); {verdict}."
    )


def secondary_result(paired: pd.DataFrame, ev: EvaluateParams) -> str:
    """How many secondary comparisons hold after Holm's correction, and in whose favour."""
    sec = paired[paired["role"] == "secondary"]
    held = sec[sec["p_holm"] <= ev.alpha]
    wins = held[held["favours"] == held["method_a"]]
    return (
        f"Secondary: {len(held)} of {len(sec)} comparisons significant after Holm's "
        f"correction (alpha {ev.alpha:g}); {len(wins)} of them favour the network method, "
        f"{len(held) - len(wins)} the baseline."
    )


def differences_to(
    per_image: pd.DataFrame, baseline: str = "lanczos", metric: str = "psnr"
) -> pd.DataFrame:
    """Each method's per-image ``metric`` minus ``baseline``'s on the same image (the paired
    figure's points): columns dataset, condition, image, method, difference; methods in
    display order, ``baseline`` itself left out."""
    keys = ["dataset", "condition", "image"]
    wide = per_image.pivot(index=keys, columns="method", values=metric)
    if baseline not in wide.columns:
        raise ValueError(f"No scores of the baseline {baseline!r}.")
    order = [m for m in sorted(wide.columns, key=method_rank) if m != baseline]
    diff = wide[order].sub(wide[baseline], axis=0).reset_index()
    long = diff.melt(id_vars=keys, var_name="method", value_name="difference")
    return long.sort_values(keys, kind="stable", ignore_index=True)
