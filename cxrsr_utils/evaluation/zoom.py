"""The paper's Fig 8 rows (one image per data set and condition, zoomed) and their |SR - HR|."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxrsr_utils.core.layout import StudyLayout
from cxrsr_utils.core.params import Params
from cxrsr_utils.evaluation.labels import condition_label, dataset_label
from cxrsr_utils.evaluation.methods import Method
from cxrsr_utils.evaluation.steps import sr_path
from cxrsr_utils.images import radiographs
from cxrsr_utils.stats import image_metrics as metrics


@dataclass(frozen=True)
class ZoomRow:
    """One row of the paper's Fig 8
    (:func:`cxrsr_utils.reporting.image_figures.zoom_comparison`): one image in one condition,
    its tiles (LR nearest-neighbour enlarged, each method's SR, HR; gray floats in [0, 1]) and
    the box that is zoomed, as fractions of the image."""

    dataset: str
    condition: str
    image: str
    tiles: list[tuple[str, np.ndarray]]
    box: tuple[float, float, float]

    @property
    def title(self) -> str:
        """Which image this is: data set, condition and file, one per line."""
        return f"{dataset_label(self.dataset)}\n{condition_label(self.condition)}\n{self.image}"

    @property
    def caption(self) -> str:
        """:attr:`title` on one line."""
        return self.title.replace("\n", " · ")


def zoom_rows(
    pairs: pd.DataFrame,
    methods: list[Method],
    work: StudyLayout | Path,
    params: Params,
) -> list[ZoomRow]:
    """One :class:`ZoomRow` per data set and condition: the first image of the data set, its
    LR of that condition enlarged ``params.scale`` times, each method's written SR output and
    the HR, with the data set's lung-field box of ``params.evaluate.zoom_boxes``."""
    rows = []
    for (dataset, condition), part in pairs.groupby(["dataset", "condition"], sort=True):
        pair = part.iloc[0]
        lr = radiographs.read_radiograph(pair.lr).as_float()
        hr = radiographs.read_radiograph(pair.hr).as_float()
        tiles = [("LR (nearest)", lr.repeat(params.scale, 0).repeat(params.scale, 1))]
        for m in methods:
            sr = sr_path(work, m, str(dataset), pair.image, str(condition))
            tiles.append((m.name, radiographs.read_radiograph(sr).as_float()))
        tiles.append(("HR", hr))
        box = params.evaluate.zoom_boxes[str(dataset)]
        rows.append(ZoomRow(str(dataset), str(condition), pair.image, tiles, box))
    return rows


def zoom_row(rows: Sequence[ZoomRow], dataset: str, condition: str) -> ZoomRow:
    """The row of ``dataset`` in ``condition`` among :func:`zoom_rows`' rows."""
    for row in rows:
        if (row.dataset, row.condition) == (dataset, condition):
            return row
    raise KeyError(f"No zoom row for data set {dataset!r} in condition {condition!r}.")


def zoom_differences(row: ZoomRow) -> list[tuple[str, np.ndarray]]:
    """|SR - HR| of each method in one :func:`zoom_rows` row (its LR and HR tiles left out)."""
    hr = row.tiles[-1][1]
    return [(title, metrics.difference_map(img, hr)) for title, img in row.tiles[1:-1]]
