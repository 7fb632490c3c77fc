"""Figures that show images: a titled grid, the paper's Fig 8 zoomed crops, |SR - HR| maps, and
:func:`add_note` (a line under any figure, used by the metric figures too).

Notebooks call these and save them (:mod:`cxrsr_utils.reporting.files`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import matplotlib.pyplot as plt
import numpy as np


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


def add_note(fig: plt.Figure, note: str | None) -> None:
    """``note`` (e.g. what each variant lacks against the paper) under the figure's axes."""
    if note:
        fig.text(0.01, 0.0, note, ha="left", va="top", fontsize=7, wrap=True)


class ZoomRowLike(Protocol):
    """One image of :func:`zoom_comparison` (:class:`cxrsr_utils.evaluation.zoom.ZoomRow`)."""

    @property
    def title(self) -> str: ...
    @property
    def tiles(self) -> Sequence[tuple[str, np.ndarray]]: ...
    @property
    def box(self) -> tuple[float, float, float]: ...


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
