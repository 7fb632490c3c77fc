"""Figures shared by the notebooks (matplotlib/seaborn); notebooks call these and save them."""

from __future__ import annotations

from collections.abc import Sequence

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
