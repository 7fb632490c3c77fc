"""Figures of SR fine-tuning (notebook 03): the logged losses, the discriminator's accuracy, and
the validation learning curves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

if TYPE_CHECKING:
    import pandas as pd


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
