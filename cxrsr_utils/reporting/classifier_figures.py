"""Figures of the classifier comparison (notebook 05): per-fold training curves, ROC curves,
confusion matrices, the AUC differences with their equivalence margins, and the paper's Fig 9.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from cxrsr_utils.core.vocabulary import KERMANY_CLASSES
from cxrsr_utils.reporting.image_figures import image_grid

if TYPE_CHECKING:
    import pandas as pd


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
    :func:`cxrsr_utils.stats.classifier_scores.roc_auc`, the one in the tables. With
    ``panel_column`` (e.g. the LR condition), one panel per value of it, the rows where it is
    empty (the original form) drawn in every panel.
    """
    import pandas as pd
    from sklearn.metrics import roc_curve

    from cxrsr_utils.stats.classifier_scores import roc_auc

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
    paper's Fig 9; rows from :func:`cxrsr_utils.classification.fig9.sample_predictions`)."""
    ncols = max((len(row) for row in rows), default=1)
    return image_grid([tile for row in rows for tile in row], ncols=ncols, size=size)
