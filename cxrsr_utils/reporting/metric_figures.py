"""Figures of per-image metric values: their distributions per method (notebook 04), the
per-image differences to a baseline, and the LR inputs' fidelity (notebook 02).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from cxrsr_utils.reporting.image_figures import add_note

if TYPE_CHECKING:
    import pandas as pd


# Axis titles with units for notebook 04's metrics.
METRIC_AXES = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM (unitless, 0-1)",
    "mse": "MSE (on [0, 1] pixels)",
    "lr_psnr": "LR-consistency PSNR (dB)",
}


def _panels(per_image: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(title, rows) of each data set (and condition, where the table has one)."""
    by = ["dataset", "condition"] if "condition" in per_image.columns else ["dataset"]
    return [
        ("\n".join(str(k) for k in (keys if isinstance(keys, tuple) else (keys,))), part)
        for keys, part in per_image.groupby(by, sort=True)
    ]


def metric_distributions(
    per_image: pd.DataFrame, metrics: Sequence[str] = ("psnr", "ssim"), note: str | None = None
) -> plt.Figure:
    """Per-image metric distributions per method, one column per data set and condition
    (seaborn box + points); ``note`` goes under the figure."""
    import seaborn as sns

    panels = _panels(per_image)
    fig, axes = plt.subplots(
        len(metrics),
        len(panels),
        figsize=(5.0 * len(panels), 3.2 * len(metrics)),
        squeeze=False,
    )
    order = list(dict.fromkeys(per_image["method"]))
    for r, metric in enumerate(metrics):
        for c, (title, part) in enumerate(panels):
            ax = axes[r, c]
            sns.boxplot(
                data=part, x=metric, y="method", order=order, ax=ax, color="0.85", fliersize=0
            )
            sns.stripplot(
                data=part,
                x=metric,
                y="method",
                order=order,
                ax=ax,
                size=3,
                color="tab:blue",
                alpha=0.6,
            )
            ax.set_title(title, fontsize=8)
            ax.set_xlabel(METRIC_AXES.get(metric, metric))
            ax.set_ylabel("")
    fig.tight_layout()
    add_note(fig, note)
    return fig


def paired_differences(
    per_image: pd.DataFrame,
    differences: pd.DataFrame,
    *,
    metric: str = "psnr",
    baseline: str = "lanczos",
    note: str | None = None,
) -> plt.Figure:
    """Per data set and condition, side by side: the per-image ``metric`` of every method
    (box + points), and each method's per-image difference to ``baseline`` on the same image
    (points, a thin line joining one image across methods, the mean as a black bar).

    ``differences`` is :func:`cxrsr_utils.evaluation.comparisons.differences_to`'s table.
    """
    import seaborn as sns

    panels = _panels(per_image)
    diff_panels = dict(_panels(differences))
    axis = METRIC_AXES.get(metric, metric)
    fig, axes = plt.subplots(len(panels), 2, figsize=(12, 2.9 * len(panels)), squeeze=False)
    order = list(dict.fromkeys(per_image["method"]))
    for r, (title, part) in enumerate(panels):
        left, right = axes[r]
        sns.boxplot(
            data=part, x=metric, y="method", order=order, ax=left, color="0.85", fliersize=0
        )
        sns.stripplot(
            data=part, x=metric, y="method", order=order, ax=left, size=3, color="tab:blue"
        )
        left.set_title(title, fontsize=8)
        left.set_xlabel(axis)
        left.set_ylabel("")
        diffs = diff_panels[title]
        methods = list(dict.fromkeys(diffs["method"]))
        wide = diffs.pivot(index="image", columns="method", values="difference")[methods]
        y = np.arange(len(methods))
        for values in wide.to_numpy():
            right.plot(values, y, color="0.6", lw=0.6, alpha=0.6)
        for k, method in enumerate(methods):
            right.scatter(wide[method], np.full(len(wide), k), s=10, color="tab:blue", zorder=3)
            right.plot([wide[method].mean()] * 2, [k - 0.3, k + 0.3], color="black", lw=2)
        right.axvline(0, color="tab:red", lw=1, ls="--")
        right.set_yticks(y, methods)
        right.invert_yaxis()
        unit = " (dB)" if axis.endswith("(dB)") else ""
        right.set_xlabel(f"{metric.upper()} minus {baseline} on the same image{unit}")
        right.set_title(f"{title}: per-image difference to {baseline}", fontsize=8)
    fig.tight_layout()
    add_note(fig, note)
    return fig


def fidelity_histograms(
    fidelity: pd.DataFrame, metrics: Sequence[str] = ("psnr", "ssim")
) -> plt.Figure:
    """Histograms of the LR inputs' fidelity per degradation mode (notebook 02's figure).

    ``fidelity`` is :func:`cxrsr_utils.degradation.preview.fidelity_table`'s: one step histogram of
    20 bins per metric, the modes overlaid.
    """
    import seaborn as sns

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        sns.histplot(data=fidelity, x=metric, hue="mode", ax=ax, bins=20, element="step")
    fig.tight_layout()
    return fig
