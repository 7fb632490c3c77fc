"""Notebook 04's summaries of the per-image scores: what each data set is, the mean of every
metric with its bootstrap CI per data set x condition x method (and rounded, as saved), the
reader's wide table and the one-sentence headline. The tests between methods are
:mod:`cxrsr_utils.evaluation.comparisons`.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from cxrsr_utils.core.layout import EVAL_CONDITIONS
from cxrsr_utils.core.params import Params
from cxrsr_utils.evaluation.labels import (
    DATASET_LABELS,
    EVAL_SPLITS,
    condition_label,
    dataset_label,
)
from cxrsr_utils.evaluation.methods import method_rank
from cxrsr_utils.stats import image_metrics as metrics
from cxrsr_utils.stats import rounding

# The groups every summary is taken over.
SUMMARY_BY = ("dataset", "condition", "method")
# Column titles of the wide table, with units.
METRIC_TITLES = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "mse": "MSE",
    "lr_psnr": "LR-consistency PSNR (dB)",
}


def datasets_table(pairs: pd.DataFrame, params: Params) -> pd.DataFrame:
    """What each evaluated data set is: its label, which split, what its HR and LR are (the
    NIH HR is native pixels, the Kermany HR a resample), and how many images it has."""
    nih, kermany = params.nih.eval_hr_size, params.kermany.hr_size
    hr = {
        "nih": f"{nih}x{nih} centre crop of the original's native pixels (no resampling)",
        "kermany": f"the whole image resampled to {kermany}x{kermany} (the classifier reads "
        "the whole chest)",
    }
    lr = (
        f"x{params.scale} smaller; {', '.join(EVAL_CONDITIONS)}: bicubic x{params.scale} of HR, "
        "and the paper's two-stage degradation of HR (drawn once per image, seeded, saved)"
    )
    rows = [
        {
            "dataset": dataset,
            "label": DATASET_LABELS.get(dataset, dataset),
            "split": EVAL_SPLITS.get(dataset, ""),
            "images": int(part["image"].nunique()),
            "conditions": ", ".join(dict.fromkeys(part["condition"])),
            "HR": hr.get(dataset, ""),
            "LR": lr,
        }
        for dataset, part in pairs.groupby("dataset", sort=True)
    ]
    return pd.DataFrame(rows)


def summary(per_image: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Mean of every metric with its bootstrap CI per data set x condition x method
    (:func:`cxrsr_utils.stats.image_metrics.summary_table`, ``params.evaluate``'s resamples and
    level)."""
    ev = params.evaluate
    return metrics.summary_table(
        per_image,
        by=SUMMARY_BY,
        n_resamples=ev.n_bootstrap,
        confidence=ev.confidence,
        seed=params.seed,
    )


def rounded(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`summary`'s table rounded as the study's tables are (``04_summary``)."""
    return rounding.round_table(summary, metrics.DIGITS)


def wide_summary(
    summary: pd.DataFrame,
    gaps: Mapping[str, str] | None = None,
    digits: dict[str, int] | None = None,
) -> pd.DataFrame:
    """One row per data set, condition and method, one ``mean [ci_low, ci_high]`` column per
    metric, and (given ``gaps``, :func:`cxrsr_utils.evaluation.methods.paper_gaps_by_method`)
    what each method lacks against the paper."""
    digits = {**metrics.DIGITS, **(digits or {})}
    table = summary.copy()
    table["value"] = [
        f"{r.mean:.{digits.get(r.metric, 4)}f} [{r.ci_low:.{digits.get(r.metric, 4)}f}, "
        f"{r.ci_high:.{digits.get(r.metric, 4)}f}]"
        for r in table.itertuples()
    ]
    order = sorted(dict.fromkeys(summary["method"]), key=method_rank)
    wide = table.pivot(index=list(SUMMARY_BY), columns="metric", values="value").reset_index()
    wide["method"] = pd.Categorical(wide["method"], order)
    wide = wide.sort_values(list(SUMMARY_BY)).astype({"method": str})
    wide["dataset"] = wide["dataset"].map(dataset_label)
    cols = [c for c in METRIC_TITLES if c in wide.columns]
    out = wide[[*SUMMARY_BY, *cols]].rename(columns=METRIC_TITLES).reset_index(drop=True)
    if gaps is not None:
        out["differs from paper"] = out["method"].map(lambda m: gaps.get(m, ""))
    return out


def headline(summary: pd.DataFrame, chosen: str) -> str:
    """Mean PSNR of the baselines, the pretrained model and the variant ``chosen`` on
    validation (``finetuned:<variant>``), per data set and condition, in one sentence."""
    psnr = summary[summary["metric"] == "psnr"].set_index(list(SUMMARY_BY))["mean"]
    parts = []
    for (dataset, condition), part in psnr.groupby(level=["dataset", "condition"], sort=True):
        means = part.droplevel(["dataset", "condition"])
        shown = [m for m in ("bicubic", "lanczos", "pretrained") if m in means.index]
        text = ", ".join(f"{m} {means[m]:.2f} dB" for m in shown)
        if chosen in means.index:
            text += f", {chosen} (chosen on validation) {means[chosen]:.2f} dB"
            if "bicubic" in means.index:
                text += f" ({means[chosen] - means['bicubic']:+.2f} dB vs bicubic)"
        parts.append(f"{dataset_label(str(dataset))}, {condition_label(str(condition))}: {text}")
    return "Mean PSNR against HR — " + "; ".join(parts) + "."
