"""Reading the model cards of a run's fine-tuned variants, and the variant chosen on validation.

Notebook 03 writes a card per variant (:func:`cxrsr_utils.finetune.records.export`); notebooks
03 and 04 read them here. Light on purpose (no torch, no basicsr): reading a card, or choosing
a variant, trains nothing.
"""

from __future__ import annotations

import json
from typing import Any

from cxrsr_utils.core.layout import StudyLayout, as_layout


def read_model_card(work: StudyLayout | str, variant: str) -> dict[str, Any] | None:
    """The model card of ``variant`` in the run ``work`` (None when it has none)."""
    path = as_layout(work).model_card(variant)
    return json.loads(path.read_text()) if path.is_file() else None


def recorded_paper_gaps(work: StudyLayout | str, variant: str) -> tuple[str, ...] | None:
    """What ``variant`` lacks against the paper as its model card records it (empty for
    nothing; :mod:`cxrsr_utils.finetune.paper_gaps`), or None where it has no such record."""
    card = read_model_card(work, variant)
    gaps = None if card is None else card.get("differs_from_paper")
    return None if gaps is None else tuple(str(g) for g in gaps)


def model_cards(work: StudyLayout | str) -> dict[str, dict[str, Any]]:
    """The model card of every variant with an exported generator in the run, by name."""
    layout = as_layout(work)
    cards = {variant: read_model_card(layout, variant) for variant in layout.finetuned_generators()}
    return {variant: card for variant, card in cards.items() if card is not None}


def chosen_variant(work: StudyLayout | str) -> str:
    """The variant whose exported generator has the highest validation PSNR (ties: the first by
    name): the study's "variant chosen on validation", the fine-tuned method of its primary
    comparison. Reads only the model cards, so nothing of the test split enters the choice."""
    layout = as_layout(work)
    scored = {
        variant: card["validation"]["psnr"]
        for variant, card in sorted(model_cards(layout).items())
        if (card.get("validation") or {}).get("psnr") is not None
    }
    if not scored:
        raise ValueError(
            f"No variant under {layout.finetune} has a validation PSNR in its model card; run "
            "notebook 03 with validation pairs (notebook 01 writes them)."
        )
    return max(scored, key=lambda v: scored[v])  # max keeps the first of equal values
