"""What notebook 04 reads from the fine-tuned variants' model cards (notebook 03 writes them).

Two records of a card (the issue-9 contract of :mod:`cxrsr_utils.finetune.records`):
``card["validation"]["psnr"]``, the validation PSNR of the checkpoint that was kept, and
``card["differs_from_paper"]``, short phrases naming what the variant lacks against the
paper's protocol. :func:`chosen_variant` is the variant the study's primary comparison tests.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cxrsr_utils.core.layout import StudyLayout, as_layout

# How a variant whose card has no differs_from_paper record is described (a card written
# before notebook 03 recorded it): unknown, which is not the same as "lacks nothing".
NOT_RECORDED = "not recorded in its model card"


def model_card(work: StudyLayout | str, variant: str) -> dict[str, Any]:
    """The model card of ``variant`` ({} when the variant has none)."""
    path = as_layout(work).model_card(variant)
    return json.loads(path.read_text()) if path.is_file() else {}


def differs_from_paper(work: StudyLayout | str, variant: str) -> tuple[str, ...] | None:
    """What ``variant`` lacks against the paper's protocol (empty for nothing), or None where
    its card does not say."""
    gaps = model_card(work, variant).get("differs_from_paper")
    return None if gaps is None else tuple(str(g) for g in gaps)


def describe_gaps(gaps: Sequence[str] | None) -> str:
    """:func:`differs_from_paper`'s answer in words for a table cell or a figure note."""
    if gaps is None:
        return NOT_RECORDED
    return "; ".join(gaps) if gaps else "nothing (the paper's protocol)"


def chosen_variant(work: StudyLayout | str) -> str:
    """The fine-tuned method of the study's primary comparison: the variant with the highest
    validation PSNR at its kept checkpoint (:func:`cxrsr_utils.finetune.records.chosen_variant`;
    it never looks at the test split)."""
    from cxrsr_utils.finetune import (
        records as finetune_records,  # torch and basicsr: only when a choice is made
    )

    return finetune_records.chosen_variant(as_layout(work))
