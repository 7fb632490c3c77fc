"""Where the study keeps its files: the project's folders, and one object for the folder of a
run, ``work/<profile>/``.

Run folders are made under the project root (:data:`cxrsr_utils.core.project.PROJECT_ROOT`).

Every hand-off between notebooks goes through a file whose place is named here once:

=======================================  ====================================================
``reports/data_manifest.csv``            every prepared image with its SHA-256 (notebook 01)
``data/prepared_with.json``              the settings the data were prepared with
``data/nih/finetune/``                   the fine-tune set, with realesrgan's ``meta_info.txt``
``data/nih/test/{hr,lr,lr_degraded}/``   NIH held-out test pairs ("same dataset")
``data/nih/val/{hr,lr}/``                NIH validation pairs (checkpoint choice, curves)
``data/kermany/{hr,lr,lr_degraded}/<CLASS>/``  Kermany pairs (classifier folds, "unseen")
``finetune/<variant>/``                  ``generator.pth``, ``model_card.json``, ``experiment/``
``sr/<method>/<condition>/<dataset>/``  SR outputs (notebook 04; notebook 05 reads them)
``classifier/``                          the reference CNN (notebook 05)
``reports/model_cards/``                 a copy of each variant's model card (notebook 03)
``reports/``, ``reports/tables/``, ``figures/``  executed notebooks, tables, figures
=======================================  ====================================================

:class:`Paths` is this layout for a profile's run folder (the folders made); modules that are
handed only the folder build it with :func:`as_layout`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from cxrsr_utils.core.project import PROJECT_ROOT

if TYPE_CHECKING:
    from cxrsr_utils.core.params import Params

ENV_OUTPUT_ROOT = "CXRSR_OUTPUT_ROOT"


DATA_MANIFEST_FILE = "data_manifest.csv"
GENERATOR_FILE = "generator.pth"
MODEL_CARD_FILE = "model_card.json"
# The data sets' pairs, relative to data/: HR and its LR forms side by side with one name.
_PAIR_FOLDERS = {
    "nih": Path("nih") / "test",
    "nih_val": Path("nih") / "val",
    "kermany": Path("kermany"),
}
# The evaluation conditions, each with the pair role of its LR input: (a) the paper's bicubic
# x4 of the HR; (b) low quality, the paper's two-stage degradation of the HR, drawn once per
# image from a fixed seed and saved by notebook 01.
EVAL_CONDITIONS = {"bicubic": "lr", "degraded": "lr_degraded"}
PAIR_ROLES = ("hr", *EVAL_CONDITIONS.values())


class StudyLayout:
    """The files of one study run under its folder ``work`` (see the module doc).

    Folders and fixed files are attributes; the places that depend on a variant, a data set
    or a method are methods.
    """

    def __init__(self, work: str | os.PathLike[str]) -> None:
        self.work = Path(work)
        # What a run reports: executed notebooks, manifests, model cards; tables; figures.
        self.reports = self.work / "reports"
        self.tables = self.reports / "tables"
        self.figures = self.work / "figures"
        # A copy of each variant's model card (model_card()), reported beside the tables.
        self.model_cards = self.reports / "model_cards"
        # Notebook 01's table of every prepared file (path relative to ``data``, SHA-256).
        self.data_manifest = self.reports / DATA_MANIFEST_FILE
        # The prepared data, and the settings they were prepared with (cxrsr_utils.core.stamps).
        self.data = self.work / "data"
        self.prepared_stamp = self.data / "prepared_with.json"
        # The fine-tune set (originals, multiscale copies, crops) and realesrgan's list of its
        # images, relative to it.
        self.nih_finetune = self.data / "nih" / "finetune"
        self.meta_info = self.nih_finetune / "meta_info.txt"
        # Notebook 03's variants, notebook 04's SR outputs, notebook 05's classifier.
        self.finetune = self.work / "finetune"
        self.sr = self.work / "sr"
        self.classifier = self.work / "classifier"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(work={self.work})"

    def pair_folder(self, dataset: str, role: str) -> Path:
        """Where the ``role`` (one of :data:`PAIR_ROLES`) images of ``dataset``'s pairs are: an
        HR image and its LR forms have the same path relative to these folders."""
        if role not in PAIR_ROLES:
            raise ValueError(f"role must be one of {', '.join(PAIR_ROLES)}, got {role!r}.")
        try:
            return self.data / _PAIR_FOLDERS[dataset] / role
        except KeyError:
            raise ValueError(
                f"No pairs of data set {dataset!r}; known: {', '.join(_PAIR_FOLDERS)}."
            ) from None

    def variant_folder(self, variant: str) -> Path:
        """A fine-tuned variant: generator, model card, ``experiment/`` (logs, checkpoints)."""
        return self.finetune / variant

    def generator(self, variant: str) -> Path:
        """The exported EMA generator of a variant (what notebook 04 and the command load)."""
        return self.variant_folder(variant) / GENERATOR_FILE

    def model_card(self, variant: str) -> Path:
        return self.variant_folder(variant) / MODEL_CARD_FILE

    def experiment(self, variant: str) -> Path:
        """basicsr's experiments root of a variant: checkpoints, loss log, train.log."""
        return self.variant_folder(variant) / "experiment"

    def torchrun_options(self, variant: str) -> Path:
        """The options file of the command that trains a variant on several GPUs."""
        return self.variant_folder(variant) / "options_torchrun.yml"

    def finetuned_generators(self) -> dict[str, Path]:
        """Every variant with an exported generator: {variant: generator path}, by name."""
        if not self.finetune.is_dir():
            return {}
        return {p.parent.name: p for p in sorted(self.finetune.glob(f"*/{GENERATOR_FILE}"))}

    def sr_output(
        self,
        method_folder: str,
        dataset: str,
        image: str | os.PathLike[str],
        condition: str = "bicubic",
    ) -> Path:
        """The SR output (PNG) of one pair's image, from the LR of ``condition`` (a key of
        :data:`EVAL_CONDITIONS`), by the method stored in ``method_folder``."""
        if condition not in EVAL_CONDITIONS:
            raise ValueError(f"condition must be one of {', '.join(EVAL_CONDITIONS)}.")
        return self.sr / method_folder / condition / dataset / Path(image).with_suffix(".png")


class Paths(StudyLayout):
    """Where a run writes: its own git-ignored folder ``work/<profile>/``, laid out as
    :class:`StudyLayout` says (the folders are made here).

    It holds the prepared data, checkpoints and SR outputs, ``reports/`` (executed notebooks,
    ``tables/``, manifests, model cards) and ``figures/``, so running the study never changes
    a tracked file. The results committed with the code live in ``reports/<profile>/`` and
    ``figures/<profile>/`` (:func:`cxrsr_utils.reporting.reference.reference_dirs`); a run is
    compared
    with them and replaces them only when published. Everything sits under the project root,
    or under ``$CXRSR_OUTPUT_ROOT`` when set (the tests use a scratch folder).
    """

    def __init__(self, params: Params, root: Path | None = None) -> None:
        env = os.environ.get(ENV_OUTPUT_ROOT)
        self.root = Path(root or env or PROJECT_ROOT)
        super().__init__(self.root / "work" / params.profile)
        for folder in (self.reports, self.tables, self.figures, self.work):
            folder.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"Paths(root={self.root})"


def as_layout(where: StudyLayout | str | os.PathLike[str]) -> StudyLayout:
    """``where`` as a layout: a layout (or :class:`Paths`) as it is, a run
    folder (``work/<profile>``) wrapped."""
    return where if isinstance(where, StudyLayout) else StudyLayout(where)
