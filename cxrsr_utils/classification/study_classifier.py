"""The classifier notebook 05 evaluates: the reference CNN trained once per cross-validation
split, or the profile's given model.

:func:`classifier_for` trains the reference CNN once per split
(:mod:`cxrsr_utils.classification.folds`: test fold k, validation fold k + 1 for the epoch
choice only, the rest to train), reloading a previous run's models trained with the same
settings, or takes ``classifier.model_path``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from cxrsr_utils.classification.folds import FoldSplit, fold_plan, folds_table
from cxrsr_utils.classification.forms import train_or_load
from cxrsr_utils.classification.kermany_images import KermanyImages
from cxrsr_utils.classification.network import load_classifier
from cxrsr_utils.core.layout import Paths
from cxrsr_utils.core.params import Params
from cxrsr_utils.data_prep import steps as data
from cxrsr_utils.external import sources
from cxrsr_utils.reporting import files as report
from cxrsr_utils.reporting import provenance

if TYPE_CHECKING:
    import keras

# What a fold's model is trained with; a change retrains it (other classifier settings only
# change how its predictions are scored).
TRAINING_KEYS = (
    "image_size",
    "epochs",
    "patience",
    "min_epochs",
    "batch_size",
    "learning_rate",
    "shear_degrees",
    "zoom",
    "horizontal_flip",
)


@dataclass(frozen=True)
class StudyClassifier:
    """The classifier notebook 05 evaluates: one model per tested fold, and where it came from."""

    models: dict[int, keras.Model]  # test fold -> the model that predicts it
    plan: list[FoldSplit]
    folds: pd.DataFrame  # per split: its folds, sizes, and (trained) epochs run and chosen
    history: pd.DataFrame | None  # per fold and epoch; None for a given model
    origin: str  # trained, loaded from a previous run, or given

    def describe(self) -> str:
        """Where the models came from, and the size of the network."""
        from cxrsr_utils.classification.network import count_trainable_parameters

        size = count_trainable_parameters(next(iter(self.models.values())))
        return f"{self.origin}; trainable parameters per model: {size:,}"


def classifier_for(params: Params, paths: Paths, images: KermanyImages) -> StudyClassifier:
    """The profile's classifier.

    The given model (``classifier.model_path``, recorded in the run's sources with its
    SHA-256) predicts every image: it was not trained here, so its predictions are not out of
    fold. Otherwise one model per split of :func:`~cxrsr_utils.classification.folds.fold_plan`
    (every fold with ``classifier.cv``, else fold 0 only) is trained by :func:`train_or_load`
    on the split's training folds, its epoch chosen by early stopping on the validation fold
    (``classifier.patience``), and saved under ``classifier/fold_<k>/`` (reloaded by a rerun
    with the same settings). Saves the tables ``05_folds`` and ``05_training_history``.
    """
    if params.classifier.model_path:
        return _given_classifier(params.classifier.model_path, paths, images.table)
    return _trained_classifier(params, paths, images)


def _given_classifier(model_path: str, paths: Paths, table: pd.DataFrame) -> StudyClassifier:
    """The given model for every split, recorded in the run's sources; saves ``05_folds``."""
    model = load_classifier(model_path, compile=True)
    digest = sources.sha256_file(Path(model_path))
    provenance.record_sources(paths, {"classifier": {"path": model_path, "sha256": digest}})
    plan = fold_plan(table.fold, cv=True)
    folds = folds_table(table, plan)
    report.save_table(folds, paths.tables, "05_folds")
    models = {split.test: model for split in plan}
    return StudyClassifier(models, plan, folds, None, f"the given model {model_path}")


def _trained_classifier(params: Params, paths: Paths, images: KermanyImages) -> StudyClassifier:
    """One model per split, trained (or reloaded); saves ``05_training_history`` and
    ``05_folds``."""
    cfg = params.classifier
    table = images.table
    plan = fold_plan(table.fold, cv=cfg.cv)
    training = {k: getattr(cfg, k) for k in TRAINING_KEYS}
    models, histories, loaded = {}, [], []
    for split in plan:
        model, history, was_loaded = _train_split(params, paths, images, split, training)
        models[split.test] = model
        histories.append(history.assign(test_fold=split.test, validation_fold=split.validation))
        loaded.append(was_loaded)
    history = pd.concat(histories, ignore_index=True)
    history = history[["test_fold", "validation_fold", *histories[0].columns[:-2]]]
    folds = folds_table(table, plan).merge(_training_summary(history), on="test_fold")
    report.save_table(history, paths.tables, "05_training_history")
    report.save_table(folds, paths.tables, "05_folds")
    which = "every fold" if cfg.cv else "fold 0 only (classifier.cv is off)"
    origin = (
        f"loaded the {len(plan)} model(s) of a previous run ({which})"
        if all(loaded)
        else f"trained {len(plan)} model(s), {which}: at most {cfg.epochs} epochs, "
        f"early stopping patience {cfg.patience}"
    )
    return StudyClassifier(models, plan, folds, history, origin)


def _train_split(
    params: Params,
    paths: Paths,
    images: KermanyImages,
    split: FoldSplit,
    training: dict[str, Any],
) -> tuple[keras.Model, pd.DataFrame, bool]:
    """One split's model, trained on its training folds or reloaded from
    ``classifier/fold_<k>/`` when its settings (training keys, seed, folds, data) match."""
    table = images.table
    masks = split.masks(table.fold)
    settings = {
        **training,
        "seed": params.seed,
        "test_fold": split.test,
        "validation_fold": split.validation,
        "train_data": data.manifest_digest(table[masks["train"]]),
        "validation_data": data.manifest_digest(table[masks["validation"]]),
    }
    return train_or_load(
        paths.classifier / f"fold_{split.test}",
        settings,
        images.x[masks["train"]],
        images.y[masks["train"]],
        val_images=images.x[masks["validation"]],
        val_labels=images.y[masks["validation"]],
        seed=params.seed,
        **training,
    )


def _training_summary(history: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for fold, part in history.groupby("test_fold", sort=False):
        chosen = part[part.chosen.astype(bool)].iloc[0]
        rows.append(
            {
                "test_fold": fold,
                "epochs_run": int(part.epoch.max()),
                "chosen_epoch": int(chosen.epoch),
                "chosen_val_loss": float(chosen.val_loss),
            }
        )
    return pd.DataFrame(rows)
