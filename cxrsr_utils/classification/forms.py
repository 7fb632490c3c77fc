"""Notebook 05's check: do super-resolved images keep the classifier's accuracy?

Vocabulary. A *method* is how an SR output was made (bicubic, pretrained, finetuned:<variant>,
...; the word of notebook 04 and :mod:`cxrsr_utils.stats.image_metrics`). A *condition* is how the
LR
input was made (:data:`cxrsr_utils.core.layout.EVAL_CONDITIONS`: "bicubic", "degraded"). A *form*
is one input variant of the same images given to the classifier: the original, its LR in a
condition, or the SR output of a method from that LR (named e.g. ``"original"``,
``"LR (degraded)"``, ``"SR finetuned:paper (bicubic)"``). The committed tables keep these
column names: ``method`` in notebook 04's, ``form`` in notebook 05's.

:func:`predict_forms` classifies every form of the same images with one model;
:func:`predict_out_of_fold` does it with the model of each cross-validation split for the
images that split tests (:mod:`cxrsr_utils.classification.folds`). :func:`summarize_forms`
reports per form: loss, accuracy, ROC AUC, sensitivity, specificity, the confusion matrix,
percentile-bootstrap confidence intervals, McNemar's exact test against the reference form,
and the AUC difference to the reference with its paired bootstrap CI and an equivalence test
(TOST) within a declared margin (the statistics are in :mod:`cxrsr_utils.stats`);
:func:`evaluate_forms` predicts and summarizes with one model. :func:`train_or_load` trains
the classifier (:mod:`cxrsr_utils.classification.network`) once and reloads it on a rerun.

Notebook 05's steps are in :mod:`cxrsr_utils.classification.steps` (and the modules it names).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cxrsr_utils.classification.images import (
    ImagesLike,
    PathLike,
    check_labels,
    take_images,
    to_batch,
    to_rgb,
)
from cxrsr_utils.classification.network import load_classifier, model_image_size, save_classifier
from cxrsr_utils.classification.training import train_classifier
from cxrsr_utils.core import atomic, stamps
from cxrsr_utils.stats import bootstrap, classifier_scores, significance

if TYPE_CHECKING:
    import keras

__all__: list[str] = [
    "evaluate_forms",
    "predict_forms",
    "predict_out_of_fold",
    "predict_probabilities",
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
    "auc_diff",
    "auc_diff_low",
    "auc_diff_high",
    "equivalence",
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
    names: Sequence[PathLike],
    *,
    threshold: float = 0.5,
    batch_size: int = 32,
) -> pd.DataFrame:
    """Per-image predictions of every form of the same images, one row per (form, image).

    ``forms`` maps a form name (e.g. 'original', 'LR (bicubic)') to that form's images (arrays
    or files) in the order of ``names``/``labels``; images of other sizes (e.g. 256 x 256 SR
    outputs) are resized to the model's input with
    :func:`~cxrsr_utils.classification.images.prepare_images`. Columns: image (its name), label,
    form, probability, prediction (probability >= threshold), correct.
    """
    names = [str(f) for f in names]
    y = check_labels(labels, len(names), "labels")
    frames = []
    for form, images in forms.items():
        if len(images) != len(names):
            raise ValueError(f"form {form!r} has {len(images)} images for {len(names)} names.")
        prob = predict_probabilities(model, images, batch_size=batch_size)
        pred = (prob >= threshold).astype(np.int64)
        frames.append(
            pd.DataFrame(
                {
                    "image": names,
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


def predict_out_of_fold(
    models: Mapping[int, keras.Model],
    forms: Mapping[str, ImagesLike],
    table: pd.DataFrame,
    *,
    threshold: float = 0.5,
    batch_size: int = 32,
) -> pd.DataFrame:
    """Every form of the images each cross-validation split tests, predicted by that split's
    model: out-of-fold predictions.

    ``models`` maps a test fold to the model trained without it; ``table`` has one row per
    image (image, label, fold) in the order of the forms' images. Images of folds with no
    model are not predicted. Returns :func:`predict_forms`' columns plus ``fold``, one row per
    (form, predicted image), forms in the given order and images in ``table``'s order, so
    each image appears exactly once per form.
    """
    folds = table["fold"].to_numpy()
    frames = []
    for form, images in forms.items():
        if len(images) != len(table):
            raise ValueError(f"form {form!r} has {len(images)} images for {len(table)} rows.")
        parts = []
        for fold, model in models.items():
            index = np.flatnonzero(folds == fold)
            if not len(index):
                raise ValueError(f"no image is in test fold {fold}.")
            rows = table.iloc[index]
            part = predict_forms(
                model,
                {form: take_images(images, index)},
                rows["label"].to_numpy(),
                list(rows["image"]),
                threshold=threshold,
                batch_size=batch_size,
            )
            part.insert(2, "fold", int(fold))
            part.index = index
            parts.append(part)
        frames.append(pd.concat(parts).sort_index())
    if not frames:
        raise ValueError("predict_out_of_fold got no forms.")
    return pd.concat(frames, ignore_index=True)


def _paired(predictions: pd.DataFrame, form: str, reference: pd.DataFrame) -> pd.DataFrame:
    rows = predictions[predictions["form"] == form].set_index("image")
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
    form: str,
    data: pd.DataFrame,
    reference: pd.DataFrame | None,
    resampling: dict,
    equivalence: dict | None,
) -> dict[str, Any]:
    # One row of summarize_forms; reference is None on the reference form itself.
    y = data["label"].to_numpy()
    prob = data["probability"].to_numpy()
    pred = data["prediction"].to_numpy()
    (tn, fp), (fn, tp) = classifier_scores.confusion_matrix(y, pred)
    sens, spec = classifier_scores.sensitivity_specificity(y, pred)
    # Accuracy from the stored predictions (whatever threshold made them): 0/1 >= 0.5.
    acc_low, acc_high = bootstrap.bootstrap_classification_ci(
        y, pred.astype(np.float64), metric="accuracy", **resampling
    )
    auc_low, auc_high = bootstrap.bootstrap_classification_ci(y, prob, metric="auc", **resampling)
    if reference is None:
        b, c, p = 0, 0, float("nan")
    else:
        b, c, p = significance.mcnemar_exact(
            reference["correct"].to_numpy(), data["correct"].to_numpy()
        )
    row = {
        "form": form,
        "n": len(y),
        "loss": classifier_scores.binary_cross_entropy(y, prob),
        "accuracy": float((pred == y).mean()),
        "accuracy_low": acc_low,
        "accuracy_high": acc_high,
        "auc": classifier_scores.roc_auc(y, prob),
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
    if equivalence is not None:
        row |= _auc_comparison(y, prob, reference, resampling, equivalence)
    return row


def _auc_comparison(
    y: np.ndarray,
    prob: np.ndarray,
    reference: pd.DataFrame | None,
    resampling: dict,
    equivalence: dict,
) -> dict[str, Any]:
    # AUC(form) - AUC(reference): paired bootstrap CI and TOST on the same replicates.
    if reference is None:
        nan = float("nan")
        return dict.fromkeys(
            ("auc_diff", "auc_diff_low", "auc_diff_high", "tost_low", "tost_high", "tost_p"), nan
        ) | {"equivalence": "reference"}
    ref_prob = reference["probability"].to_numpy()
    replicates = bootstrap.auc_difference_replicates(
        y, prob, ref_prob, n_resamples=resampling["n_resamples"], seed=resampling["seed"]
    )
    diff = classifier_scores.roc_auc(y, prob) - classifier_scores.roc_auc(y, ref_prob)
    low, high = bootstrap.percentile_interval(replicates, resampling["confidence"])
    tost = significance.tost_bootstrap(diff, replicates, **equivalence)
    return {
        "auc_diff": diff,
        "auc_diff_low": low,
        "auc_diff_high": high,
        "tost_low": tost["ci_low"],
        "tost_high": tost["ci_high"],
        "tost_p": tost["p_tost"],
        "equivalence": tost["verdict"],
    }


def summarize_forms(
    predictions: pd.DataFrame,
    *,
    reference_form: str = "original",
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    equivalence_margin: float | None = None,
    equivalence_alpha: float = 0.05,
) -> pd.DataFrame:
    """One row per form: loss, accuracy, AUC (with bootstrap CIs), sensitivity, specificity,
    confusion counts, McNemar's exact test against ``reference_form``, and (with an
    ``equivalence_margin``) the AUC difference to it with an equivalence test.

    ``predictions`` is :func:`predict_forms`' (or :func:`predict_out_of_fold`'s) table.
    Columns: form, n, loss, accuracy, accuracy_low, accuracy_high, auc, auc_low, auc_high,
    sensitivity, specificity, tn, fp, fn, tp, only_reference_correct (b), only_form_correct
    (c), mcnemar_p (NaN on the reference row). With a margin also: auc_diff (AUC(form) -
    AUC(reference)), auc_diff_low/high (its paired percentile-bootstrap CI at
    ``confidence``: both forms scored on the same resampled images), tost_low/high (the
    1 - 2 ``equivalence_alpha`` interval of the same replicates), tost_p and equivalence
    (:func:`significance.tost_bootstrap`'s verdict: equivalent, inconclusive, lower, higher;
    "reference" on the reference row). Bootstrap resamples (``n_resamples``) are the same
    images for every form, drawn from ``seed`` (:func:`bootstrap.bootstrap_classification_ci`).
    """
    forms = list(dict.fromkeys(predictions["form"]))
    if reference_form not in forms:
        raise ValueError(f"reference form {reference_form!r} not among the forms {forms}.")
    reference = predictions[predictions["form"] == reference_form].set_index("image")
    resampling = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}
    equivalence = (
        None
        if equivalence_margin is None
        else {"margin": equivalence_margin, "alpha": equivalence_alpha}
    )
    rows = []
    for form in forms:
        data = _paired(predictions, form, reference)
        paired_reference = None if form == reference_form else reference
        rows.append(_form_row(form, data, paired_reference, resampling, equivalence))
    return pd.DataFrame(rows)


def evaluate_forms(
    model: keras.Model,
    forms: Mapping[str, ImagesLike],
    labels: Sequence[int] | np.ndarray,
    names: Sequence[PathLike],
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
        model, forms, labels, names, threshold=threshold, batch_size=batch_size
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
    go to :func:`~cxrsr_utils.classification.training.train_classifier`. Returns ``(model, history,
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
