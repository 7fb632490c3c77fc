"""The model card of a fine-tuned variant as a typed record, and reading a run's cards.

Notebook 03 writes a card per variant (:func:`cxrsr_utils.finetune.records.export`) as the JSON
of :meth:`ModelCard.to_json`; notebooks 03 and 04 read it back with :meth:`ModelCard.read`.
Every key of the card is one field here (``differs_from_paper`` is :attr:`ModelCard.paper_gaps`);
``total_iter`` is the run's length and ``iterations`` the iteration of the exported generator
(the one the validation rule chose). :func:`chosen_variant` picks the variant the study reports
first, on validation alone.

Light on purpose (no torch, no basicsr): reading a card, or choosing a variant, trains nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from cxrsr_utils.core.errors import MissingStepError
from cxrsr_utils.core.layout import StudyLayout, as_layout


def _fields(record: Mapping[str, Any], cls: type, optional: tuple[str, ...] = ()) -> None:
    """Raise ValueError unless ``record`` has exactly the keys of the record class ``cls``."""
    names = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    missing = sorted(names - set(record) - set(optional))
    unknown = sorted(set(record) - names)
    if missing or unknown:
        raise MissingStepError(
            f"Not a {cls.__name__} of this version (missing {missing}, unknown {unknown}); "
            "run notebook 03 again to rewrite the model cards."
        )


class FlatRecord:
    """A section of the card whose JSON is its fields as they are (one key per field)."""

    def to_json(self) -> dict[str, Any]:
        """The record as the card's JSON holds it."""
        return dict(vars(self))

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> Self:
        """The record of a card's JSON (exactly the record's keys, else MissingStepError)."""
        _fields(record, cls)
        make: Callable[..., Self] = cls  # a dataclass: its fields are its arguments
        return make(**record)


@dataclass(frozen=True)
class GeneratorRecord(FlatRecord):
    """``card["generator"]``: the exported file, its hash, and which weights it holds."""

    path: str
    sha256: str
    param_key: str
    weights: str
    iteration: int


@dataclass(frozen=True)
class DiscriminatorRecord(FlatRecord):
    """``card["discriminator"]``: did the discriminator learn, from its loss log."""

    verdict: str
    at_chance: bool | None
    balanced_accuracy: float | None


@dataclass(frozen=True)
class ValidationRecord:
    """``card["validation"]``: the rule that chose the exported generator, its iteration, its
    validation PSNR (dB; None when not validated) and the whole curve ``[[iter, psnr], ...]``."""

    chosen_by: str
    chosen_iter: int
    psnr: float | None
    curve: tuple[tuple[int, float], ...]

    def to_json(self) -> dict[str, Any]:
        """The record as the card's JSON holds it."""
        return {
            "chosen_by": self.chosen_by,
            "chosen_iter": self.chosen_iter,
            "psnr": self.psnr,
            "curve": [[int(i), float(p)] for i, p in self.curve],
        }

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> ValidationRecord:
        """The record of a card's JSON."""
        _fields(record, cls)
        curve = tuple((int(i), float(p)) for i, p in record["curve"])
        return cls(record["chosen_by"], record["chosen_iter"], record["psnr"], curve)


@dataclass(frozen=True)
class TrainingData(FlatRecord):
    """``card["training_data"]``: how many images the run trained on, and their list's hash."""

    n_images: int
    meta_info_sha256: str


@dataclass(frozen=True)
class ModelCard:
    """What a fine-tuned variant is and how it was trained: one field per key of its card."""

    model: str
    architecture: dict[str, Any]
    variant: str
    degradation: str
    loss: str
    perceptual: bool
    # What it lacks against the paper (cxrsr_utils.finetune.paper_gaps); the card's key is
    # "differs_from_paper".
    paper_gaps: tuple[str, ...]
    discriminator: DiscriminatorRecord | None
    validation: ValidationRecord
    # The run's identity (cxrsr_utils.finetune.identity.run_identity).
    options_sha256: str
    params_sha256: str | None
    data_manifest_sha256: str | None
    validation_sha256: str | None
    iterations: int  # the iteration of the exported generator
    total_iter: int  # the run's length
    batch_size: int
    gt_size: int
    world_size: int
    device: str
    autocast: str | None
    ema_decay: float
    # Mean seconds per iteration over the loss log (a resumed run's too; D warm-up included).
    seconds_per_iter: float | None
    sources: dict[str, Any]
    training_data: TrainingData
    generator: GeneratorRecord
    resumed_from: int | None
    software: dict[str, str]
    # The speed switches that were on (opt["cxrsr"][SPEED_OPTION] of
    # cxrsr_utils.finetune.speed); None, and no key in the card, with all of them off.
    speed: dict[str, Any] | None = None

    @property
    def identity(self) -> dict[str, Any]:
        """The run identity the card holds (what :func:`cxrsr_utils.core.stamps.done` checks)."""
        return {
            "options_sha256": self.options_sha256,
            "params_sha256": self.params_sha256,
            "data_manifest_sha256": self.data_manifest_sha256,
            "validation_sha256": self.validation_sha256,
        }

    def to_json(self) -> dict[str, Any]:
        """The card as its JSON file holds it."""
        out = dict(vars(self))
        out["differs_from_paper"] = list(out.pop("paper_gaps"))
        for key in ("discriminator", "validation", "training_data", "generator"):
            out[key] = None if out[key] is None else out[key].to_json()
        if out["speed"] is None:
            del out["speed"]  # a card of a run with no speed switch on has no such key
        return out

    @classmethod
    def from_json(cls, card: Mapping[str, Any]) -> ModelCard:
        """The record of a card's JSON (ValueError for a card of another version)."""
        record = dict(card)
        if "differs_from_paper" in record:
            record["paper_gaps"] = tuple(str(g) for g in record.pop("differs_from_paper"))
        _fields(record, cls, optional=("speed",))
        disc = record["discriminator"]
        record["discriminator"] = None if disc is None else DiscriminatorRecord.from_json(disc)
        record["validation"] = ValidationRecord.from_json(record["validation"])
        record["training_data"] = TrainingData.from_json(record["training_data"])
        record["generator"] = GeneratorRecord.from_json(record["generator"])
        return cls(**record)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> ModelCard:
        """The card in the JSON file ``path``."""
        return cls.from_json(json.loads(Path(path).read_text()))


def read_model_card(work: StudyLayout | str, variant: str) -> ModelCard | None:
    """The model card of ``variant`` in the run ``work`` (None when it has none)."""
    path = as_layout(work).model_card(variant)
    return ModelCard.read(path) if path.is_file() else None


def recorded_paper_gaps(work: StudyLayout | str, variant: str) -> tuple[str, ...] | None:
    """What ``variant`` lacks against the paper as its model card records it (empty for
    nothing; :mod:`cxrsr_utils.finetune.paper_gaps`), or None where it has no card."""
    card = read_model_card(work, variant)
    return None if card is None else card.paper_gaps


def model_cards(work: StudyLayout | str) -> dict[str, ModelCard]:
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
        variant: card.validation.psnr
        for variant, card in sorted(model_cards(layout).items())
        if card.validation.psnr is not None
    }
    if not scored:
        raise MissingStepError(
            f"No variant under {layout.finetune} has a validation PSNR in its model card; run "
            "notebook 03 with validation pairs (notebook 01 writes them)."
        )
    return max(scored, key=lambda v: scored[v])  # max keeps the first of equal values
