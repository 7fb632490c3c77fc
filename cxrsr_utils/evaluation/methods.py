"""The methods notebooks 04 and 05 compare: how each brings LR to HR size and where it came from.

:func:`available_methods` loads ``bicubic`` and ``lanczos``, ``pretrained`` (the un-tuned
RealESRGAN_x4plus), each fine-tuned variant under ``work/finetune/`` (notebook 03) and
``realesr-general-x4v3`` when its weights resolve, every network through
:func:`cxrsr_utils.sr.upscaler.load_model` (the path of ``cxrsr upscale``); the tables say
what each fine-tuned variant lacks against the paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxrsr_utils.core.layout import StudyLayout, as_layout
from cxrsr_utils.core.vocabulary import finetuned_method, is_finetuned
from cxrsr_utils.external import registry, sources
from cxrsr_utils.finetune.model_card import recorded_paper_gaps
from cxrsr_utils.finetune.paper_gaps import describe_paper_gaps
from cxrsr_utils.sr import infer
from cxrsr_utils.sr import networks as models
from cxrsr_utils.sr.upscaler import BASELINES, Model, load_model


@dataclass(frozen=True)
class Method:
    """One way of bringing LR to HR size (a loaded :class:`~cxrsr_utils.sr.upscaler.Model`),
    and where it came from."""

    name: str
    kind: str  # "resize" or "network"
    model: Model
    source: str
    sha256: str = ""
    note: str = ""
    # A fine-tuned variant's paper gaps as its model card records them (None: it has no card);
    # empty for the methods that are not fine-tuned here.
    paper_gaps: tuple[str, ...] | None = ()

    def upscale(self, image: np.ndarray) -> np.ndarray:
        """The SR of a gray float image in [0, 1], as ``cxrsr_utils.upscale`` computes it."""
        return self.model.upscale_float(image)

    def upscale_many(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """:meth:`upscale` of each image, a network's batched (see ``Model.upscale_floats``)."""
        return self.model.upscale_floats(images)

    @property
    def paper_gaps_text(self) -> str:
        """What the method lacks against the paper, in words (tables' and figures' notes)."""
        if not is_finetuned(self.name):
            return "not fine-tuned"
        return describe_paper_gaps(self.paper_gaps)

    def describe(self) -> dict[str, str]:
        """The method as the methods table and the run's sources file record it."""
        return {
            "method": self.name,
            "kind": self.kind,
            "source": self.source,
            "sha256": self.sha256,
            "note": self.note,
            "differs_from_paper": self.paper_gaps_text,
        }


def method_rank(name: str) -> tuple[int, str]:
    """Display order: baselines, the pretrained model, other pretrained networks, fine-tuned."""
    fixed = {"bicubic": 0, "lanczos": 1, "pretrained": 2}
    return (fixed.get(name, 4 if is_finetuned(name) else 3), name)


def available_methods(
    work: StudyLayout | Path, options: infer.InferOptions, *, include_general_v3: bool = True
) -> tuple[list[Method], list[str]]:
    """Every method that can run here, and a note for each one that cannot (and why).

    Networks run with ``options``; the resize baselines ignore them.
    """
    methods = [
        Method(
            name, "resize", load_model(name, options), source=f"radiographs.resize ({name}, PIL)"
        )
        for name in BASELINES
    ]
    skipped: list[str] = []
    net, info = models.load_pretrained_generator()  # as load_model("pretrained"), with its info
    methods.append(
        Method(
            "pretrained",
            "network",
            load_model(net, options),
            info.source,
            info.sha256,
            "fp16-rounded weights" if info.fp16_rounded else "",
        )
    )
    layout = as_layout(work)
    generators = layout.finetuned_generators()
    for variant, path in generators.items():
        tuned = load_model(path, options)
        gaps = recorded_paper_gaps(layout, variant)
        methods.append(
            Method(finetuned_method(variant), "network", tuned, str(path), tuned.sha256, "", gaps)
        )
    if not generators:
        skipped.append("no fine-tuned generator under work/finetune/ (run notebook 03)")
    if include_general_v3:
        try:
            path = sources.resolve("realesr-general-x4v3")
        except sources.SourceError as exc:
            skipped.append(f"realesr-general-x4v3: {exc}")
        else:
            net = models.build_general_v3()
            net.load_state_dict(models.load_state_dict_file(path, "params"), strict=True)
            methods.append(
                Method(
                    "realesr-general-x4v3",
                    "network",
                    load_model(net.eval(), options),
                    str(path),
                    registry.WEIGHTS["realesr-general-x4v3"].sha256 or "",
                )
            )
    return methods, skipped


def source_record(methods: list[Method]) -> dict[str, dict[str, str]]:
    """Each method as the run's sources file records it (``method:<name>`` -> its description)."""
    return {f"method:{m.name}": m.describe() for m in methods}


def methods_table(methods: list[Method], skipped: list[str]) -> pd.DataFrame:
    """The methods evaluated (:meth:`Method.describe`, with what each fine-tuned variant
    lacks against the paper), then one ``not evaluated`` row for each method that cannot run
    here, its note saying why."""
    columns = ["method", "kind", "source", "sha256", "note", "differs_from_paper"]
    rows = [m.describe() for m in methods]
    rows += [{**dict.fromkeys(columns, ""), "kind": "not evaluated", "note": n} for n in skipped]
    return pd.DataFrame(rows, columns=columns)


def paper_gaps_by_method(methods: Sequence[Method]) -> dict[str, str]:
    """{method: what it lacks against the paper, in words} (:attr:`Method.paper_gaps_text`)."""
    return {m.name: m.paper_gaps_text for m in methods}


def paper_gaps_note(methods: Sequence[Method]) -> str:
    """One line per fine-tuned variant saying what it lacks against the paper (the note every
    figure of notebook 04 carries)."""
    lines = [
        f"{m.name} lacks against the paper: {m.paper_gaps_text}"
        for m in methods
        if is_finetuned(m.name)
    ]
    return "\n".join(lines)
