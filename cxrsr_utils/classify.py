"""Notebook 05's check: do super-resolved images keep the classifier's accuracy?

Vocabulary. A *method* is how an SR output was made (bicubic, pretrained, finetuned:<variant>,
...; the word of notebook 04 and :mod:`cxrsr_utils.metrics`). A *form* is one input variant of
the same held-out images given to the classifier: the original, its low-resolution version, or
the SR output of a method (named e.g. ``"original"``, ``"LR (bicubic)"``,
``"SR finetuned:paper"``). The committed tables keep these column names: ``method`` in
notebook 04's, ``form`` in notebook 05's.

:func:`predict_forms` classifies every form of the same images; :func:`summarize_forms`
reports per form: loss, accuracy, ROC AUC, sensitivity, specificity, the confusion matrix,
percentile-bootstrap confidence intervals, and McNemar's exact test against the reference form
(the statistics are :mod:`cxrsr_utils.stats`'); :func:`evaluate_forms` does both.
:func:`train_or_load` trains the classifier (:mod:`cxrsr_utils.classifier`) once and reloads it
on a rerun.

Notebook 05's steps, one call each: :func:`load_kermany` (the images),
:func:`classifier_for` (train, reload or take the profile's given model), :func:`load_forms`
(the test images in every form) and :func:`sample_predictions` (the paper's Fig 9).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cxrsr_utils import atomic, data, evaluate, provenance, report, sources, stamps, stats
from cxrsr_utils.classifier import (
    load_classifier,
    model_image_size,
    save_classifier,
    train_classifier,
)
from cxrsr_utils.classifier_images import (
    ImagesLike,
    PathLike,
    check_labels,
    load_images,
    to_batch,
    to_rgb,
)
from cxrsr_utils.params import Params, Paths

if TYPE_CHECKING:
    import keras

__all__: list[str] = [
    "KermanyImages",
    "StudyClassifier",
    "classifier_for",
    "evaluate_forms",
    "load_forms",
    "load_kermany",
    "predict_forms",
    "predict_probabilities",
    "sample_predictions",
    "summarize_forms",
    "train_or_load",
    "SUMMARY_VIEW",
]


# The columns of the forms summary a reader needs first (the rest is in the saved table).
SUMMARY_VIEW = (
    "form",
    "n",
    "loss",
    "accuracy",
    "accuracy_low",
    "accuracy_high",
    "auc",
    "auc_low",
    "auc_high",
    "sensitivity",
    "specificity",
    "only_reference_correct",
    "only_form_correct",
    "mcnemar_p",
)


def predict_probabilities(
    model: keras.Model, images: ImagesLike, *, batch_size: int = 32
) -> np.ndarray:
    """P(PNEUMONIA) for each image (float64, shape (N,)); images are brought to the model size."""
    gray = to_batch(images, model_image_size(model))
    out = np.empty(len(gray), dtype=np.float64)
    for start in range(0, len(gray), batch_size):
        chunk = to_rgb(gray[start : start + batch_size])
        out[start : start + len(chunk)] = np.asarray(model.predict_on_batch(chunk)).reshape(-1)
    return out


def predict_forms(
    model: keras.Model,
    forms: Mapping[str, ImagesLike],
    labels: Sequence[int] | np.ndarray,
    files: Sequence[PathLike],
    *,
    threshold: float = 0.5,
    batch_size: int = 32,
) -> pd.DataFrame:
    """Per-image predictions of every form of the same images, one row per (form, image).

    ``forms`` maps a form name (e.g. 'original', 'bicubic', 'realesrgan') to that form's images
    in the order of ``files``/``labels``; in-memory arrays of other sizes (e.g. 256 x 256 SR
    outputs) are resized to the model's input with
    :func:`~cxrsr_utils.classifier_images.prepare_images`. Columns: file, label, form,
    probability, prediction (probability >= threshold), correct.
    """
    files = [str(f) for f in files]
    y = check_labels(labels, len(files), "labels")
    frames = []
    for form, images in forms.items():
        if len(images) != len(files):
            raise ValueError(f"form {form!r} has {len(images)} images for {len(files)} files.")
        prob = predict_probabilities(model, images, batch_size=batch_size)
        pred = (prob >= threshold).astype(np.int64)
        frames.append(
            pd.DataFrame(
                {
                    "file": files,
                    "label": y,
                    "form": form,
                    "probability": prob,
                    "prediction": pred,
                    "correct": pred == y,
                }
            )
        )
    if not frames:
        raise ValueError("predict_forms got no forms.")
    return pd.concat(frames, ignore_index=True)


def _paired(predictions: pd.DataFrame, form: str, reference: pd.DataFrame) -> pd.DataFrame:
    rows = predictions[predictions["form"] == form].set_index("file")
    if rows.index.has_duplicates or set(rows.index) != set(reference.index):
        raise ValueError(
            f"form {form!r} does not hold exactly the reference form's images (one row each); "
            "forms must be the same held-out images."
        )
    rows = rows.loc[reference.index]
    if not (rows["label"].to_numpy() == reference["label"].to_numpy()).all():
        raise ValueError(f"form {form!r} labels disagree with the reference form's labels.")
    return rows


def _form_row(
    form: str, data: pd.DataFrame, reference_correct: np.ndarray | None, resampling: dict
) -> dict[str, Any]:
    # One row of summarize_forms; reference_correct is None on the reference form itself.
    y = data["label"].to_numpy()
    prob = data["probability"].to_numpy()
    pred = data["prediction"].to_numpy()
    (tn, fp), (fn, tp) = stats.confusion_matrix(y, pred)
    sens, spec = stats.sensitivity_specificity(y, pred)
    # Accuracy from the stored predictions (whatever threshold made them): 0/1 >= 0.5.
    acc_low, acc_high = stats.bootstrap_classification_ci(
        y, pred.astype(np.float64), metric="accuracy", **resampling
    )
    auc_low, auc_high = stats.bootstrap_classification_ci(y, prob, metric="auc", **resampling)
    if reference_correct is None:
        b, c, p = 0, 0, float("nan")
    else:
        b, c, p = stats.mcnemar_exact(reference_correct, data["correct"].to_numpy())
    return {
        "form": form,
        "n": len(y),
        "loss": stats.binary_cross_entropy(y, prob),
        "accuracy": float((pred == y).mean()),
        "accuracy_low": acc_low,
        "accuracy_high": acc_high,
        "auc": stats.roc_auc(y, prob),
        "auc_low": auc_low,
        "auc_high": auc_high,
        "sensitivity": sens,
        "specificity": spec,
        "tn": int(tn),
        "fp": int(fp),
        "fn": int(fn),
        "tp": int(tp),
        "only_reference_correct": b,
        "only_form_correct": c,
        "mcnemar_p": p,
    }


def summarize_forms(
    predictions: pd.DataFrame,
    *,
    reference_form: str = "original",
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per form: loss, accuracy, AUC (with bootstrap CIs), sensitivity, specificity,
    confusion counts, and McNemar's exact test against ``reference_form``.

    ``predictions`` is :func:`predict_forms`' table. Columns: form, n, loss, accuracy,
    accuracy_low, accuracy_high, auc, auc_low, auc_high, sensitivity, specificity, tn, fp, fn,
    tp, only_reference_correct (b), only_form_correct (c), mcnemar_p (NaN on the reference
    row). Bootstrap resamples (``n_resamples``) are the same images for every form, drawn from
    ``seed`` (:func:`stats.bootstrap_classification_ci`).
    """
    forms = list(dict.fromkeys(predictions["form"]))
    if reference_form not in forms:
        raise ValueError(f"reference form {reference_form!r} not among the forms {forms}.")
    reference = predictions[predictions["form"] == reference_form].set_index("file")
    resampling = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}
    rows = []
    for form in forms:
        data = _paired(predictions, form, reference)
        reference_correct = None if form == reference_form else reference["correct"].to_numpy()
        rows.append(_form_row(form, data, reference_correct, resampling))
    return pd.DataFrame(rows)


def evaluate_forms(
    model: keras.Model,
    forms: Mapping[str, ImagesLike],
    labels: Sequence[int] | np.ndarray,
    files: Sequence[PathLike],
    *,
    reference_form: str = "original",
    threshold: float = 0.5,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    batch_size: int = 32,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`predict_forms` then :func:`summarize_forms`: returns (summary, predictions)."""
    predictions = predict_forms(
        model, forms, labels, files, threshold=threshold, batch_size=batch_size
    )
    summary = summarize_forms(
        predictions,
        reference_form=reference_form,
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
    )
    return summary, predictions


def train_or_load(
    folder: PathLike,
    settings: Mapping[str, Any],
    train_images: ImagesLike,
    train_labels: Sequence[int] | np.ndarray,
    **train_kwargs: Any,
) -> tuple[keras.Model, pd.DataFrame, bool]:
    """Train the classifier into ``folder``, or load the one a previous run trained there.

    ``settings`` (JSON-able: the parameters and a digest of the training data) is stored beside
    ``model.keras`` and ``history.csv``; a later call with the same settings loads instead of
    retraining (an interrupted notebook resumes), different settings retrain. ``train_kwargs``
    go to :func:`~cxrsr_utils.classifier.train_classifier`. Returns ``(model, history,
    loaded)``.
    """
    folder = Path(folder)
    model_path, history_path = folder / "model.keras", folder / "history.csv"
    stamp = folder / "settings.json"
    if stamps.done(stamp, settings, model_path, history_path) is not None:
        return load_classifier(model_path, compile=True), pd.read_csv(history_path), True
    model, history = train_classifier(train_images, train_labels, **train_kwargs)
    folder.mkdir(parents=True, exist_ok=True)
    save_classifier(model, model_path)
    with atomic.atomic_path(history_path) as tmp:
        history.to_csv(tmp, index=False)
    stamps.write(stamp, settings)
    return model, history, False


# --- notebook 05's steps --------------------------------------------------------------------


@dataclass(frozen=True)
class KermanyImages:
    """The Kermany images of notebook 05 at the classifier's input size: the training split
    (HR) and the held-out test pairs, in the order of their tables."""

    train: pd.DataFrame  # the data manifest's rows of the training images
    test: pd.DataFrame  # the test pairs (cxrsr_utils.evaluate.eval_pairs' Kermany rows)
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray  # the test images' original (HR) form
    test_y: np.ndarray

    def describe(self) -> str:
        """How many images each split holds, and how many of them show pneumonia."""
        return (
            f"train: {len(self.train_y)} images ({self.train_y.sum()} pneumonia), "
            f"test: {len(self.test_y)} ({self.test_y.sum()} pneumonia)"
        )


def load_kermany(params: Params, paths: Paths) -> KermanyImages:
    """Notebook 01's Kermany HR images: the training split and the test pairs, loaded at
    ``params.classifier.image_size``."""
    manifest = pd.read_csv(paths.data_manifest)
    kermany = manifest[(manifest.dataset == "kermany") & (manifest.role == "hr")]
    # Until the classifier cross-validates over notebook 01's folds: fold 0 tests, the rest train.
    train = kermany[kermany.fold != 0]
    tested = {(paths.data / p).as_posix() for p in kermany[kermany.fold == 0].path}
    pairs = evaluate.eval_pairs(manifest, paths)
    test = pairs[(pairs.dataset == "kermany") & pairs.hr.map(lambda p: p.as_posix() in tested)]
    size = params.classifier.image_size
    train_x = load_images([paths.data / p for p in train.path], image_size=size)
    test_x = load_images(list(test.hr), image_size=size)
    return KermanyImages(
        train, test, train_x, train.label.to_numpy(int), test_x, test.label.to_numpy(int)
    )


@dataclass(frozen=True)
class StudyClassifier:
    """The classifier notebook 05 evaluates, and where it came from."""

    model: keras.Model
    history: pd.DataFrame | None  # its training curves; None for a given model
    origin: str  # trained, loaded from a previous run, or given


def classifier_for(params: Params, paths: Paths, images: KermanyImages) -> StudyClassifier:
    """The profile's classifier: the given model (``classifier.model_path``, recorded in the
    run's sources with its SHA-256), else the one trained on ``images``' training split by
    :func:`train_or_load` (reloaded when a previous run trained it with the same settings),
    with the test split as validation data; a trained one's history is saved as the table
    ``05_training_history``."""
    cfg = params.classifier
    if cfg.model_path:
        model = load_classifier(cfg.model_path, compile=True)
        digest = sources.sha256_file(Path(cfg.model_path))
        provenance.record_sources(paths, {"classifier": {"path": cfg.model_path, "sha256": digest}})
        return StudyClassifier(model, None, f"the given model {cfg.model_path}")
    settings = {
        **cfg.model_dump(mode="json"),
        "seed": params.seed,
        "train_data": data.manifest_digest(images.train),
    }
    model, history, loaded = train_or_load(
        paths.classifier,
        settings,
        images.train_x,
        images.train_y,
        val_images=images.test_x,
        val_labels=images.test_y,
        image_size=cfg.image_size,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        shear_degrees=cfg.shear_degrees,
        zoom=cfg.zoom,
        horizontal_flip=cfg.horizontal_flip,
        seed=params.seed,
    )
    report.save_table(history, paths.tables, "05_training_history")
    origin = "loaded the model of a previous run" if loaded else f"trained for {cfg.epochs} epochs"
    return StudyClassifier(model, history, origin)


def load_forms(params: Params, paths: Paths, images: KermanyImages) -> dict[str, np.ndarray]:
    """The test images in every form, at the classifier's input size: ``original``,
    ``LR (bicubic)`` and ``SR <method>`` for each network of notebook 04 (its written
    outputs, made here by the same engine where that notebook has not run)."""
    methods, _ = evaluate.study_methods(params, paths.work)
    networks = [m for m in methods if m.kind == "network"]
    evaluate.run_methods(images.test, networks, paths.work)  # reuses notebook 04's outputs
    size = params.classifier.image_size
    forms = {
        "original": images.test_x,
        "LR (bicubic)": load_images(list(images.test.lr), image_size=size),
    }
    for m in networks:
        forms[f"SR {m.name}"] = load_images(
            [evaluate.sr_path(paths.work, m, "kermany", img) for img in images.test.image],
            image_size=size,
        )
    return forms


def sample_predictions(
    forms: Mapping[str, Sequence[np.ndarray] | np.ndarray],
    predictions: pd.DataFrame,
    labels: Sequence[int] | np.ndarray,
    *,
    per_class: int = 3,
    shown: Sequence[str] = ("original", "SR pretrained"),
) -> list[list[tuple[str, np.ndarray]]]:
    """The paper's Fig 9 (:func:`cxrsr_utils.plots.prediction_grid`): the first ``per_class``
    test images of each class, one row per form of ``shown`` that was classified, each tile
    titled with its true class and the prediction (:func:`predict_forms`' table)."""
    picks = list(pd.Series(labels).groupby(np.asarray(labels)).head(per_class).index)
    names = dict(enumerate(data.KERMANY_CLASSES))
    rows = []
    for form in shown:
        if form not in forms:
            continue
        part = predictions[predictions.form == form].reset_index(drop=True)
        row = []
        for i in picks:
            pred = names[int(part.prediction[i])]
            true = names[int(labels[i])]
            title = f"{form}: true {true}\npred {pred} (p={part.probability[i]:.2f})"
            row.append((title, forms[form][i]))
        rows.append(row)
    return rows
