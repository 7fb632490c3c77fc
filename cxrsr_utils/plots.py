"""Figures shared by the notebooks (matplotlib/seaborn); notebooks call these and save them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from cxrsr_utils.data import KERMANY_CLASSES

if TYPE_CHECKING:
    import pandas as pd


def image_grid(
    images: Sequence[tuple[str, np.ndarray]], ncols: int = 5, size: float = 2.6
) -> plt.Figure:
    """Gray images in a grid, each titled with its label and shape."""
    nrows = max(1, -(-len(images) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, img) in zip(axes.flat, images, strict=False):
        ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{title}\n{img.shape[1]}x{img.shape[0]}", fontsize=8)
    fig.tight_layout()
    return fig


def zoom_comparison(
    rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]]]],
    box: tuple[float, float, float] = (0.35, 0.3, 0.3),
    size: float = 2.4,
) -> plt.Figure:
    """The paper's Fig 8: per row (one image), each method's output zoomed into one box.

    ``box`` is (x, y, side) as fractions of the image; LR inputs are shown nearest-neighbour
    enlarged so their pixels stay visible.
    """
    ncols = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(
        len(rows), ncols, figsize=(size * ncols, size * len(rows)), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for r, (row_title, images) in enumerate(rows):
        for c, (title, img) in enumerate(images):
            h, w = img.shape
            x0, y0, side = int(box[0] * w), int(box[1] * h), max(1, int(box[2] * min(h, w)))
            axes[r, c].imshow(
                img[y0 : y0 + side, x0 : x0 + side],
                cmap="gray",
                vmin=0,
                vmax=1,
                interpolation="nearest",
            )
            axes[r, c].set_title(f"{title}" if r else f"{title}", fontsize=8)
        axes[r, 0].text(
            -0.08,
            0.5,
            row_title,
            transform=axes[r, 0].transAxes,
            rotation=90,
            va="center",
            ha="right",
            fontsize=8,
        )
    fig.tight_layout()
    return fig


def difference_maps(
    images: Sequence[tuple[str, np.ndarray]], vmax: float = 0.15, size: float = 2.6
) -> plt.Figure:
    """|SR - HR| maps side by side, on one colour scale (clipped at ``vmax``)."""
    fig, axes = plt.subplots(
        1, len(images), figsize=(size * len(images), size * 1.1), squeeze=False
    )
    im = None
    for ax, (title, diff) in zip(axes[0], images, strict=True):
        im = ax.imshow(diff, cmap="magma", vmin=0, vmax=vmax)
        ax.set_title(f"{title}\nmean {diff.mean():.4f}", fontsize=8)
        ax.axis("off")
    if im is not None:
        fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="|SR - HR|")
    return fig


def metric_distributions(
    per_image: pd.DataFrame, metrics: Sequence[str] = ("psnr", "ssim")
) -> plt.Figure:
    """Per-image metric distributions per method and data set (seaborn box + points)."""
    import seaborn as sns

    datasets = sorted(per_image["dataset"].unique())
    fig, axes = plt.subplots(
        len(metrics),
        len(datasets),
        figsize=(5.5 * len(datasets), 3.2 * len(metrics)),
        squeeze=False,
    )
    order = list(dict.fromkeys(per_image["method"]))
    for r, metric in enumerate(metrics):
        for c, dataset in enumerate(datasets):
            part = per_image[per_image["dataset"] == dataset]
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
            ax.set_title(f"{dataset}: {metric.upper()}", fontsize=9)
            ax.set_ylabel("")
    fig.tight_layout()
    return fig


def fidelity_histograms(
    fidelity: pd.DataFrame, metrics: Sequence[str] = ("psnr", "ssim")
) -> plt.Figure:
    """Histograms of the LR inputs' fidelity per degradation mode (notebook 02's figure).

    ``fidelity`` is :func:`cxrsr_utils.degrade_preview.fidelity_table`'s: one step histogram of
    20 bins per metric, the modes overlaid.
    """
    import seaborn as sns

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        sns.histplot(data=fidelity, x=metric, hue="mode", ax=ax, bins=20, element="step")
    fig.tight_layout()
    return fig


def training_curves(
    history: pd.DataFrame,
    x: str = "epoch",
    pairs: Sequence[tuple[str, str]] = (("loss", "val_loss"), ("accuracy", "val_accuracy")),
) -> plt.Figure:
    """Training vs validation curves (the paper's Fig 6 and 7)."""
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 3.2), squeeze=False)
    for ax, (train, val) in zip(axes[0], pairs, strict=True):
        ax.plot(history[x], history[train], marker="o", ms=3, label="training")
        if val in history and history[val].notna().any():
            ax.plot(history[x], history[val], marker="o", ms=3, label="validation")
        ax.set_xlabel(x)
        ax.set_ylabel(train)
        ax.legend()
    fig.tight_layout()
    return fig


def fold_training_curves(history: pd.DataFrame) -> plt.Figure:
    """The classifier's per-fold training curves: loss and accuracy per epoch on the training
    folds (solid) and on the validation fold (dashed, the fold that chose the epoch), one
    colour per split, the chosen epoch ringed (``history``: notebook 05's
    ``05_training_history``, with test_fold, validation_fold, epoch, loss, accuracy,
    val_loss, val_accuracy, chosen)."""
    panels = (("loss", "binary cross-entropy"), ("accuracy", "accuracy (threshold 0.5)"))
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.6), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (metric, label) in zip(axes[0], panels, strict=True):
        for i, (fold, part) in enumerate(history.groupby("test_fold", sort=True)):
            colour = colours[i % len(colours)]
            val_fold = int(part.validation_fold.iloc[0])
            ax.plot(
                part.epoch, part[metric], color=colour, lw=1.2, label=f"test fold {fold}: training"
            )
            ax.plot(
                part.epoch,
                part[f"val_{metric}"],
                color=colour,
                lw=1.2,
                ls="--",
                label=f"test fold {fold}: validation (fold {val_fold})",
            )
            chosen = part[part.chosen.astype(bool)]
            ax.plot(chosen.epoch, chosen[f"val_{metric}"], "o", mfc="none", color=colour, ms=7)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
    axes[0][0].set_title("circle: the epoch kept (lowest validation loss)", fontsize=8)
    axes[0][1].legend(fontsize=6, loc="best")
    fig.tight_layout()
    return fig


def roc_curves(
    predictions: pd.DataFrame, form_column: str = "form", panel_column: str | None = None
) -> plt.Figure:
    """ROC curve of every form (one line each), from per-image (out-of-fold) probabilities.

    Points from ``sklearn.metrics.roc_curve`` at every distinct probability
    (``drop_intermediate=False``: collinear points kept); the AUC in the legend is
    :func:`cxrsr_utils.stats.roc_auc`, the one in the tables. With ``panel_column`` (e.g. the
    LR condition), one panel per value of it, the rows where it is empty (the original form)
    drawn in every panel.
    """
    import pandas as pd
    from sklearn.metrics import roc_curve

    from cxrsr_utils.stats import roc_auc

    if panel_column is None:
        panels = {"": predictions}
    else:
        common = predictions[predictions[panel_column].fillna("") == ""]
        values = [v for v in dict.fromkeys(predictions[panel_column].fillna("")) if v]
        panels = {
            v: pd.concat([common, predictions[predictions[panel_column] == v]]) for v in values
        }
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 4.4), squeeze=False)
    for ax, (name, part) in zip(axes[0], panels.items(), strict=True):
        for form, rows in part.groupby(form_column, sort=False):
            y = rows["label"].to_numpy()
            p = rows["probability"].to_numpy()
            fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
            ax.plot(fpr, tpr, label=f"{form} (AUC {roc_auc(y, p):.3f})")
        ax.plot([0, 1], [0, 1], color="0.7", ls="--", lw=1)
        ax.set_xlabel("false positive rate (1 - specificity)")
        ax.set_ylabel("true positive rate (sensitivity)")
        ax.set_title(f"out-of-fold ROC{f', {panel_column} {name}' if name else ''}", fontsize=9)
        ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return fig


def confusion_matrices(
    summary: pd.DataFrame, classes: Sequence[str] = KERMANY_CLASSES, ncols: int = 5
) -> plt.Figure:
    """One confusion matrix per form (rows: true class, columns: predicted), ``ncols`` a row."""
    import seaborn as sns

    n = len(summary)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.9 * ncols, 2.8 * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, row in zip(axes.flat, summary.itertuples(), strict=False):
        cm = np.array([[row.tn, row.fp], [row.fn, row.tp]])
        sns.heatmap(
            cm,
            annot=True,
            fmt="d",
            cbar=False,
            cmap="Blues",
            ax=ax,
            xticklabels=classes,
            yticklabels=classes,
        )
        ax.set_title(row.form, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    fig.suptitle("confusion matrices (cells: number of images)", fontsize=9)
    fig.tight_layout()
    return fig


def auc_differences(summary: pd.DataFrame, margin: float) -> plt.Figure:
    """Each form's AUC minus the original's with its paired bootstrap CI (thick: the TOST
    interval, thin: the two-sided CI), and the equivalence margins ±``margin`` (``summary``:
    notebook 05's forms summary; the reference row is left out)."""
    rows = summary[summary["auc_diff"].notna()].iloc[::-1]
    fig, ax = plt.subplots(figsize=(6.4, 0.35 * len(rows) + 1.2))
    y = np.arange(len(rows))
    ax.hlines(y, rows.auc_diff_low, rows.auc_diff_high, color="0.5", lw=1)
    ax.hlines(y, rows.tost_low, rows.tost_high, color="C0", lw=4)
    ax.plot(rows.auc_diff, y, "o", color="k", ms=4)
    for edge in (-margin, margin):
        ax.axvline(edge, color="C3", ls="--", lw=1)
    ax.axvline(0, color="0.7", lw=1)
    ax.set_yticks(y, [f"{r.form} ({r.equivalence})" for r in rows.itertuples()], fontsize=7)
    ax.set_xlabel("AUC(form) - AUC(original), out of fold")
    ax.set_title(f"red: equivalence margins ±{margin:g}", fontsize=8)
    fig.tight_layout()
    return fig


def prediction_grid(
    rows: Sequence[Sequence[tuple[str, np.ndarray]]], size: float = 2.4
) -> plt.Figure:
    """Sample images titled with their true label and prediction, one row per form (the
    paper's Fig 9; rows from :func:`cxrsr_utils.classify.sample_predictions`)."""
    ncols = max((len(row) for row in rows), default=1)
    return image_grid([tile for row in rows for tile in row], ncols=ncols, size=size)


def loss_curves(logs: dict[str, pd.DataFrame], x: str = "iter") -> plt.Figure:
    """Every logged loss over iterations, one panel per training variant."""
    fig, axes = plt.subplots(1, len(logs), figsize=(5.2 * len(logs), 3.4), squeeze=False)
    for ax, (variant, log) in zip(axes[0], logs.items(), strict=True):
        for column in [c for c in log.columns if c.startswith(("l_", "out_"))]:
            if log[column].notna().any():
                ax.plot(log[x], log[column], marker=".", label=column)
        ax.set_title(variant)
        ax.set_xlabel("iteration")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
