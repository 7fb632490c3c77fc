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


def roc_curves(predictions: pd.DataFrame, form_column: str = "form") -> plt.Figure:
    """ROC curve of every form (one line each), from per-image probabilities.

    Points from ``sklearn.metrics.roc_curve`` at every distinct probability
    (``drop_intermediate=False``: collinear points kept, so the line is drawn as before);
    the AUC in the legend is :func:`cxrsr_utils.stats.roc_auc`, the one in the tables.
    """
    from sklearn.metrics import roc_curve

    from cxrsr_utils.stats import roc_auc

    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for form, part in predictions.groupby(form_column, sort=False):
        y = part["label"].to_numpy()
        p = part["probability"].to_numpy()
        fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
        ax.plot(fpr, tpr, label=f"{form} (AUC {roc_auc(y, p):.3f})")
    ax.plot([0, 1], [0, 1], color="0.7", ls="--", lw=1)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def confusion_matrices(
    summary: pd.DataFrame, classes: Sequence[str] = KERMANY_CLASSES
) -> plt.Figure:
    """One confusion matrix per form (rows: true class, columns: predicted)."""
    import seaborn as sns

    n = len(summary)
    fig, axes = plt.subplots(1, n, figsize=(2.8 * n, 2.7), squeeze=False)
    for ax, row in zip(axes[0], summary.itertuples(), strict=True):
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
        ax.set_ylabel("loss (out_d_*: mean discriminator logit)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def discriminator_accuracy(logs: dict[str, pd.DataFrame], x: str = "iter") -> plt.Figure:
    """The discriminator's accuracy on real and on fake patches over iterations, one panel per
    variant that has one (``d_acc_real``/``d_acc_fake`` of its loss log), with chance (0.5 for
    their mean) drawn: a discriminator that stays at chance did not learn."""
    gan = {v: log for v, log in logs.items() if {"d_acc_real", "d_acc_fake"} <= set(log.columns)}
    fig, axes = plt.subplots(1, max(1, len(gan)), figsize=(5.2 * max(1, len(gan)), 3.2))
    axes = np.atleast_1d(axes)
    if not gan:
        axes[0].text(0.5, 0.5, "no variant with a discriminator", ha="center", va="center")
        axes[0].axis("off")
    for ax, (variant, log) in zip(axes, gan.items(), strict=False):
        ax.plot(log[x], log["d_acc_real"], ".", ms=3, label="real scored real")
        ax.plot(log[x], log["d_acc_fake"], ".", ms=3, label="fake scored fake")
        balanced = (log["d_acc_real"] + log["d_acc_fake"]) / 2
        window = max(1, len(log) // 10)
        ax.plot(log[x], balanced.rolling(window, min_periods=1).mean(), label="balanced (mean)")
        ax.axhline(0.5, color="0.5", ls="--", lw=1, label="chance")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(variant)
        ax.set_xlabel("iteration")
        ax.set_ylabel("share of patches classified correctly")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def validation_curves(curve: pd.DataFrame, references: pd.DataFrame | None = None) -> plt.Figure:
    """Learning curves: validation PSNR (dB) against iteration, one line per variant, with the
    reference methods' validation PSNR (``references``: method, val_psnr) as horizontal lines.
    Every point is on the validation split; the chosen checkpoint is where a variant peaks
    (with ``finetune.checkpoint: best_val``)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for variant, part in curve.groupby("variant", sort=False):
        ax.plot(part["iter"], part["val_psnr"], marker="o", ms=4, label=str(variant))
    styles = {"bicubic": ":", "lanczos": "--", "pretrained": "-."}
    names = {"lanczos": "Lanczos", "pretrained": "pretrained x4plus (the start)"}
    for row in (references if references is not None else curve.iloc[0:0]).itertuples():
        method = str(row.method)
        ax.axhline(
            row.val_psnr,
            color="0.4",
            ls=styles.get(method, "-"),
            lw=1,
            label=f"{names.get(method, method)} ({row.val_psnr:.2f} dB)",
        )
    ax.set_xlabel("training iteration")
    ax.set_ylabel("validation PSNR (dB)")
    ax.set_title("Learning curves on the NIH validation split (bicubic x4 LR)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
