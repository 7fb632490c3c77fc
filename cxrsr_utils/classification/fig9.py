"""The paper's Fig 9: sample predictions of the original and of the best fine-tuned SR form.

:func:`best_finetuned_form` picks the fine-tuned variant's SR form with the highest AUC,
:func:`fig9_forms` the forms the figure shows, and :func:`sample_predictions` the tiles of
:func:`cxrsr_utils.reporting.classifier_figures.prediction_grid`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cxrsr_utils.classification.images import take_images, to_batch
from cxrsr_utils.classification.steps import Form
from cxrsr_utils.core.vocabulary import FINETUNED_PREFIX, KERMANY_CLASSES


def fig9_forms(summary: pd.DataFrame) -> list[str]:
    """The forms the paper's Fig 9 shows: the original, then the best fine-tuned SR form
    (:func:`best_finetuned_form`) after the LR it was made from; the original only when no
    fine-tuned variant was classified."""
    best = best_finetuned_form(summary)
    if best is None:
        return ["original"]
    condition = summary.set_index("form").condition[best]
    return ["original", f"LR ({condition})", best]


def best_finetuned_form(summary: pd.DataFrame) -> str | None:
    """The SR form of a fine-tuned variant with the highest AUC (ties: the first in name
    order), or None when no fine-tuned variant was classified (``summary`` with the
    :func:`forms_table` columns)."""
    tuned = summary[(summary.kind == "SR") & summary.method.str.startswith(FINETUNED_PREFIX)]
    if tuned.empty:
        return None
    return str(tuned.sort_values(["auc", "form"], ascending=[False, True]).iloc[0].form)


def sample_predictions(
    forms: Sequence[Form],
    predictions: pd.DataFrame,
    table: pd.DataFrame,
    shown: Sequence[str],
    *,
    image_size: int,
    per_class: int = 3,
) -> list[list[tuple[str, np.ndarray]]]:
    """The paper's Fig 9
    (:func:`cxrsr_utils.reporting.classifier_figures.prediction_grid`): the first
    ``per_class`` predicted images of each class (NORMAL first), one row per form of ``shown``
    that was classified, each tile (the image at the classifier's input size) titled with its
    true class and its out-of-fold prediction
    (:func:`~cxrsr_utils.classification.forms.predict_out_of_fold`' table). ``table`` is the
    images' table (:class:`~cxrsr_utils.classification.kermany_images.KermanyImages`), in the
    forms' order."""
    by_name = {f.name: f for f in forms}
    position = {name: i for i, name in enumerate(table.image)}
    predicted = predictions.drop_duplicates("image")  # the images of one form, in order
    picks = pd.concat(
        [part.head(per_class) for _, part in predicted.groupby("label", sort=True)]
    ).image.tolist()
    names = dict(enumerate(KERMANY_CLASSES))
    rows = []
    for form in shown:
        if form not in by_name:
            continue
        part = predictions[predictions.form == form].set_index("image")
        tiles = to_batch(
            take_images(by_name[form].images, [position[i] for i in picks]), image_size
        )
        row = []
        for image, tile in zip(picks, tiles, strict=True):
            p = part.loc[image]
            # One fact a line: "true X, pred Y (p=...)" on one line overran its column.
            title = (
                f"{form}\ntrue {names[int(p.label)]}\n"
                f"pred {names[int(p.prediction)]} (p={p.probability:.2f})"
            )
            row.append((title, tile))
        rows.append(row)
    return rows
