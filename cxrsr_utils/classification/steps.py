"""Notebook 05's steps, one call each: the Kermany images and their folds, the cross-validated
classifier, the forms of every image, the size-only baseline and the paper's Fig 9.

:func:`load_kermany` reads notebook 01's Kermany pairs (every usable image, with its patient,
its patient-grouped fold and its original size); :func:`classifier_for` trains the reference
CNN once per cross-validation split (:mod:`cxrsr_utils.classification.folds`: test fold k,
validation fold k + 1 for the epoch choice only, the rest to train) or takes the profile's
given model; :func:`load_forms` lists every form of the images (original, LR per condition,
SR per network and condition from notebook 04's outputs, made here by the same engine where
that notebook has not run); :func:`size_only_baseline` fits the size-only baseline on the
same folds; :func:`best_finetuned_form` and :func:`sample_predictions` make the paper's Fig 9.
The statistics of the forms are :mod:`cxrsr_utils.classification.forms`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cxrsr_utils.classification import forms as classify
from cxrsr_utils.classification import size_baseline
from cxrsr_utils.classification.folds import (
    FoldSplit,
    check_grouped_folds,
    fold_plan,
    folds_table,
    n_folds,
)
from cxrsr_utils.classification.forms import train_or_load
from cxrsr_utils.classification.images import ImagesLike, load_images, take_images, to_batch
from cxrsr_utils.classification.network import load_classifier
from cxrsr_utils.core.layout import EVAL_CONDITIONS
from cxrsr_utils.core.params import Params, Paths
from cxrsr_utils.core.vocabulary import FINETUNED_PREFIX
from cxrsr_utils.data_prep import steps as data
from cxrsr_utils.evaluation import steps as evaluate
from cxrsr_utils.external import sources
from cxrsr_utils.reporting import files as report
from cxrsr_utils.reporting import provenance

if TYPE_CHECKING:
    import keras

__all__: list[str] = [
    "FORM_COLUMNS",
    "Form",
    "KermanyImages",
    "StudyClassifier",
    "analysis_plan",
    "best_finetuned_form",
    "classifier_for",
    "classify_forms",
    "fig9_forms",
    "forms_table",
    "load_forms",
    "load_kermany",
    "sample_predictions",
    "size_only_baseline",
    "summarize",
]

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
class KermanyImages:
    """Every Kermany image of the run, with its fold, and its HR at the classifier's size."""

    # One row per image, sorted by image: image (<CLASS>/<stem>.png, its name in the pair
    # folders), path, sha256, hr and one column per LR role (absolute paths), label, patient,
    # fold, width and height (the original's, before notebook 01 resampled it).
    table: pd.DataFrame
    x: np.ndarray  # the original (HR) form at the classifier's input size
    y: np.ndarray

    def describe(self) -> str:
        """How many images, pneumonia images, patients and folds."""
        t = self.table
        return (
            f"{len(t)} images ({int(self.y.sum())} pneumonia) of {t.patient.nunique()} "
            f"patients in {n_folds(t.fold)} patient-grouped folds"
        )


def _original_sizes(paths: Paths) -> pd.DataFrame:
    split = pd.read_csv(paths.tables / "01_kermany_split.csv")
    stems = split["file"].map(lambda f: Path(f).stem)
    image = split["class_name"] + "/" + stems + ".png"
    return pd.DataFrame({"image": image, "width": split["width"], "height": split["height"]})


def load_kermany(params: Params, paths: Paths) -> KermanyImages:
    """Notebook 01's Kermany HR images (the data manifest's rows) with their LR files, folds
    and patients, and the original sizes of its ``01_kermany_split`` table; the HR loaded at
    ``params.classifier.image_size``. Raises if a patient spans two folds."""
    manifest = pd.read_csv(paths.data_manifest)
    hr = manifest[(manifest.dataset == "kermany") & (manifest.role == "hr")]
    if hr.empty:
        raise ValueError("The data manifest has no Kermany images; run notebook 01 first.")
    hr_folder = paths.pair_folder("kermany", "hr")
    table = pd.DataFrame(
        {
            "image": [(paths.data / p).relative_to(hr_folder).as_posix() for p in hr.path],
            "path": hr.path.to_numpy(),
            "sha256": hr.sha256.to_numpy(),
            "label": hr.label.astype(int).to_numpy(),
            "patient": hr.patient.to_numpy(),
            "fold": hr.fold.astype(int).to_numpy(),
        }
    )
    for role in ("hr", *EVAL_CONDITIONS.values()):
        table[role] = [paths.pair_folder("kermany", role) / i for i in table.image]
    sizes = _original_sizes(paths)
    table = table.merge(sizes, on="image", how="left", validate="one_to_one")
    if table[["width", "height"]].isna().any().any():
        missing = table.image[table.width.isna()].head(3).tolist()
        raise ValueError(f"01_kermany_split has no original size for e.g. {missing}.")
    table = table.sort_values("image", ignore_index=True)
    check_grouped_folds(table)
    x = load_images(list(table.hr), image_size=params.classifier.image_size)
    return KermanyImages(table, x, table.label.to_numpy(int))


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
    cfg = params.classifier
    table = images.table
    if cfg.model_path:
        model = load_classifier(cfg.model_path, compile=True)
        digest = sources.sha256_file(Path(cfg.model_path))
        provenance.record_sources(paths, {"classifier": {"path": cfg.model_path, "sha256": digest}})
        plan = fold_plan(table.fold, cv=True)
        folds = folds_table(table, plan)
        report.save_table(folds, paths.tables, "05_folds")
        models = {split.test: model for split in plan}
        return StudyClassifier(models, plan, folds, None, f"the given model {cfg.model_path}")
    plan = fold_plan(table.fold, cv=cfg.cv)
    training = {k: getattr(cfg, k) for k in TRAINING_KEYS}
    models, histories, loaded = {}, [], []
    for split in plan:
        masks = split.masks(table.fold)
        settings = {
            **training,
            "seed": params.seed,
            "test_fold": split.test,
            "validation_fold": split.validation,
            "train_data": data.manifest_digest(table[masks["train"]]),
            "validation_data": data.manifest_digest(table[masks["validation"]]),
        }
        model, history, was_loaded = train_or_load(
            paths.classifier / f"fold_{split.test}",
            settings,
            images.x[masks["train"]],
            images.y[masks["train"]],
            val_images=images.x[masks["validation"]],
            val_labels=images.y[masks["validation"]],
            seed=params.seed,
            **training,
        )
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


@dataclass(frozen=True)
class Form:
    """One form of every image: its name, what it is, and its images in the table's order."""

    name: str
    kind: str  # "original", "LR" or "SR"
    condition: str  # a key of EVAL_CONDITIONS; "" for the original
    method: str  # the SR method; "" for the original and LR
    images: ImagesLike  # arrays at the classifier's size, or files


# What a form is, in the order the tables show it.
FORM_COLUMNS = ("form", "kind", "condition", "method")


def forms_table(forms: Sequence[Form]) -> pd.DataFrame:
    """The forms' names and what they are (form, kind, condition, method), for the tables."""
    return pd.DataFrame(
        [(f.name, f.kind, f.condition, f.method) for f in forms], columns=list(FORM_COLUMNS)
    )


def load_forms(params: Params, paths: Paths, images: KermanyImages) -> list[Form]:
    """Every image in every form: ``original`` (in memory), then per condition of
    :data:`~cxrsr_utils.core.layout.EVAL_CONDITIONS` its ``LR (<condition>)`` and the
    ``SR <method> (<condition>)`` output of each network of notebook 04, as files (read at
    the classifier's size when predicted). SR outputs notebook 04 has not written are made
    here by the same engine (:func:`cxrsr_utils.evaluation.steps.run_methods`)."""
    methods, _ = evaluate.study_methods(params, paths.work)
    networks = [m for m in methods if m.kind == "network"]
    forms = [Form("original", "original", "", "", images.x)]
    for condition, role in EVAL_CONDITIONS.items():
        forms.append(Form(f"LR ({condition})", "LR", condition, "", list(images.table[role])))
        # evaluate.eval_pairs' form: one row per image in this condition, its LR in ``lr``
        pairs = images.table.assign(dataset="kermany", condition=condition, lr=images.table[role])
        for m in networks:
            files = [
                evaluate.sr_path(paths.work, m, "kermany", img, condition=condition)
                for img in images.table.image
            ]
            if not all(f.is_file() for f in files):  # notebook 04 has not run
                evaluate.run_methods(pairs, [m], paths.work)
            forms.append(Form(f"SR {m.name} ({condition})", "SR", condition, m.name, files))
    return forms


def summarize(predictions: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Every form's statistics against the original (:func:`classify.summarize_forms`) with
    the profile's bootstrap, confidence, seed and equivalence margin, each row led by its
    form's kind, condition and method (``predictions``' columns, as in ``05_predictions``)."""
    cfg = params.classifier
    summary = classify.summarize_forms(
        predictions,
        n_resamples=cfg.n_bootstrap,
        confidence=cfg.confidence,
        seed=params.seed,
        equivalence_margin=cfg.equivalence_margin,
        equivalence_alpha=cfg.equivalence_alpha,
    )
    forms = predictions[list(FORM_COLUMNS)].drop_duplicates("form")
    return forms.merge(summary, on="form", how="right", validate="one_to_one")


def classify_forms(
    params: Params, paths: Paths, clf: StudyClassifier, images: KermanyImages, forms: list[Form]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every form of every tested image classified by its split's model
    (:func:`~cxrsr_utils.classification.forms.predict_out_of_fold`, threshold
    ``classifier.threshold``)
    and summarized against the original (:func:`~cxrsr_utils.classification.forms.summarize_forms`,
    with
    the TOST margin ``classifier.equivalence_margin``); both tables carry the forms' kind,
    condition and method. Saves ``05_predictions`` and ``05_forms_summary``; returns
    (summary, predictions)."""
    cfg = params.classifier
    predictions = classify.predict_out_of_fold(
        clf.models,
        {f.name: f.images for f in forms},
        images.table,
        threshold=cfg.threshold,
    )
    meta = forms_table(forms)
    predictions = predictions.merge(meta, on="form", how="left", validate="many_to_one")
    summary = summarize(predictions, params)
    report.save_table(summary, paths.tables, "05_forms_summary")
    report.save_table(predictions, paths.tables, "05_predictions", markdown=False)
    return summary, predictions


def size_only_baseline(
    params: Params, paths: Paths, clf: StudyClassifier, images: KermanyImages, cnn: pd.DataFrame
) -> tuple[pd.DataFrame, str]:
    """The size-only baseline (:mod:`cxrsr_utils.classification.size_baseline`) on the splits the
    CNN was
    tested on, set beside the CNN's out-of-fold AUC on the original form (``cnn``: its
    predictions). Saves ``05_size_baseline`` (and its per-image predictions); returns the
    table and the sentence saying whether size explains the CNN's AUC."""
    cfg = params.classifier
    size = size_baseline.out_of_fold(images.table, clf.plan)
    report.save_table(size, paths.tables, "05_size_baseline_predictions", markdown=False)
    table, sentence = size_baseline.compare_with_cnn(
        size,
        cnn,
        n_resamples=cfg.n_bootstrap,
        confidence=cfg.confidence,
        seed=params.seed,
    )
    report.save_table(table, paths.tables, "05_size_baseline")
    return table, sentence


def analysis_plan(params: Params) -> str:
    """Notebook 05's statistics as the profile declares them, in words (printed before any
    result)."""
    cfg = params.classifier
    level = 1 - 2 * cfg.equivalence_alpha
    return "\n".join(
        [
            "Primary metric: out-of-fold ROC AUC of each form, and its difference to the "
            f"original form with a paired percentile-bootstrap {cfg.confidence:.0%} CI "
            f"({cfg.n_bootstrap} resamples of the images, the same for every form).",
            f"Equivalence (TOST): a form keeps the classifier's AUC when the {level:.0%} "
            f"bootstrap CI of its AUC difference lies inside ±{cfg.equivalence_margin:g} "
            f"(two one-sided tests at α = {cfg.equivalence_alpha:g}).",
            f"Secondary: accuracy, sensitivity and specificity at the declared threshold "
            f"P(PNEUMONIA) >= {cfg.threshold:g} (never tuned), and McNemar's exact test "
            "against the original.",
            "The validation fold only chooses each model's epoch (early stopping on its loss "
            f"after {cfg.min_epochs} warm-up epochs, patience {cfg.patience}, at most "
            f"{cfg.epochs}); no number is chosen on a test fold.",
            "Control: a size-only baseline (logistic regression on the original width, height "
            "and aspect, same folds) beside the CNN's AUC on the original images.",
        ]
    )


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
    """The paper's Fig 9 (:func:`cxrsr_utils.reporting.figures.prediction_grid`): the first
    ``per_class``
    predicted images of each class (NORMAL first), one row per form of ``shown`` that was
    classified, each tile (the image at the classifier's input size) titled with its true
    class and its out-of-fold prediction
    (:func:`~cxrsr_utils.classification.forms.predict_out_of_fold`'
    table). ``table`` is the images' table (:class:`KermanyImages`), in the forms' order."""
    by_name = {f.name: f for f in forms}
    position = {name: i for i, name in enumerate(table.image)}
    predicted = predictions.drop_duplicates("image")  # the images of one form, in order
    picks = pd.concat(
        [part.head(per_class) for _, part in predicted.groupby("label", sort=True)]
    ).image.tolist()
    names = dict(enumerate(data.KERMANY_CLASSES))
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
