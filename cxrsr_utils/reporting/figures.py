"""Figures shared by the notebooks (matplotlib/seaborn); notebooks call these and save them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import matplotlib.pyplot as plt
import numpy as np

from cxrsr_utils.data_prep.steps import KERMANY_CLASSES

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


# Axis titles with units for notebook 04's metrics.
METRIC_AXES = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM (unitless, 0-1)",
    "mse": "MSE (on [0, 1] pixels)",
    "lr_psnr": "LR-consistency PSNR (dB)",
}


class ZoomRowLike(Protocol):
    """One image of :func:`zoom_comparison` (:class:`cxrsr_utils.evaluation.steps.ZoomRow`)."""

    @property
    def title(self) -> str: ...
    @property
    def tiles(self) -> Sequence[tuple[str, np.ndarray]]: ...
    @property
    def box(self) -> tuple[float, float, float]: ...


def add_note(fig: plt.Figure, note: str | None) -> None:
    """``note`` (e.g. what each variant lacks against the paper) under the figure's axes."""
    if note:
        fig.text(0.01, 0.0, note, ha="left", va="top", fontsize=7, wrap=True)


def _box_pixels(box: tuple[float, float, float], shape: tuple[int, ...]) -> tuple[int, int, int]:
    h, w = shape[:2]
    return int(box[0] * w), int(box[1] * h), max(1, int(box[2] * min(h, w)))


def zoom_comparison(
    rows: Sequence[ZoomRowLike], size: float = 2.4, note: str | None = None
) -> plt.Figure:
    """The paper's Fig 8: per row (one image in one condition), the full HR image with the
    zoomed box drawn on it, then each tile (LR nearest-neighbour enlarged, every method, HR)
    cropped to that box; ``note`` goes under the figure."""
    from matplotlib.patches import Rectangle

    ncols = 1 + max(len(row.tiles) for row in rows)
    # The full image gets a wider column: its title names the image, and the box must show.
    fig, axes = plt.subplots(
        len(rows),
        ncols,
        figsize=(size * (ncols + 0.6), size * 1.15 * len(rows)),
        squeeze=False,
        gridspec_kw={"width_ratios": [1.6] + [1] * (ncols - 1)},
    )
    for ax in axes.flat:
        ax.axis("off")
    for r, row in enumerate(rows):
        hr = row.tiles[-1][1]
        x0, y0, side = _box_pixels(row.box, hr.shape)
        axes[r, 0].imshow(hr, cmap="gray", vmin=0, vmax=1)
        axes[r, 0].add_patch(Rectangle((x0, y0), side, side, fill=False, ec="red", lw=1.2))
        axes[r, 0].set_title(
            f"{row.title}\nHR, full ({hr.shape[1]}x{hr.shape[0]} px), box in red", fontsize=7
        )
        for c, (title, img) in enumerate(row.tiles, start=1):
            x0, y0, side = _box_pixels(row.box, img.shape)
            axes[r, c].imshow(
                img[y0 : y0 + side, x0 : x0 + side],
                cmap="gray",
                vmin=0,
                vmax=1,
                interpolation="nearest",
            )
            axes[r, c].set_title(f"{title}\n(box, {side}x{side} px)", fontsize=8)
    fig.tight_layout()
    add_note(fig, note)
    return fig


def difference_maps(
    images: Sequence[tuple[str, np.ndarray]],
    vmax: float = 0.15,
    size: float = 2.6,
    title: str | None = None,
    note: str | None = None,
) -> plt.Figure:
    """|SR - HR| maps side by side, on one colour scale (clipped at ``vmax``); ``title`` names
    the image they show, ``note`` goes under the figure."""
    fig, axes = plt.subplots(
        1, len(images), figsize=(size * len(images), size * 1.1), squeeze=False
    )
    im = None
    for ax, (name, diff) in zip(axes[0], images, strict=True):
        im = ax.imshow(diff, cmap="magma", vmin=0, vmax=vmax)
        ax.set_title(f"{name}\nmean {diff.mean():.4f}", fontsize=8)
        ax.axis("off")
    if im is not None:
        fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="|SR - HR| (fraction of full range)")
    if title:
        fig.suptitle(title, fontsize=9, y=1.02)
    add_note(fig, note)
    return fig


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
    paper's Fig 9; rows from :func:`cxrsr_utils.classification.forms.sample_predictions`)."""
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
