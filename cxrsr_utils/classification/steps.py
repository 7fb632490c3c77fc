"""Notebook 05's steps on the forms of the images: list them, classify them, summarize them,
and the size-only baseline and the statistics plan beside them.

:func:`load_forms` lists every form of the images (original, LR per condition, SR per network
and condition from notebook 04's outputs, made here by the same engine where that notebook has
not run); :func:`classify_forms` classifies them with each split's model and summarizes them;
:func:`size_only_baseline` fits the size-only baseline on the same folds; :func:`analysis_plan`
says the statistics before any result. The images are
:mod:`cxrsr_utils.classification.kermany_images`', the classifier
:mod:`cxrsr_utils.classification.study_classifier`'s, the paper's Fig 9
:mod:`cxrsr_utils.classification.fig9`'s; the statistics of the forms are
:mod:`cxrsr_utils.classification.forms`'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from cxrsr_utils.classification import forms as classify
from cxrsr_utils.classification import size_baseline
from cxrsr_utils.classification.images import ImagesLike
from cxrsr_utils.classification.kermany_images import KermanyImages
from cxrsr_utils.classification.study_classifier import StudyClassifier
from cxrsr_utils.core.layout import EVAL_CONDITIONS, Paths
from cxrsr_utils.core.params import Params
from cxrsr_utils.evaluation import steps as evaluate
from cxrsr_utils.reporting import files as report

__all__: list[str] = [
    "FORM_COLUMNS",
    "Form",
    "analysis_plan",
    "classify_forms",
    "forms_table",
    "load_forms",
    "size_only_baseline",
    "summarize",
]


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
    ``classifier.threshold``) and summarized against the original
    (:func:`~cxrsr_utils.classification.forms.summarize_forms`, with the TOST margin
    ``classifier.equivalence_margin``); both tables carry the forms' kind, condition and method.
    Saves ``05_predictions`` and ``05_forms_summary``; returns (summary, predictions)."""
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
    CNN was tested on, set beside the CNN's out-of-fold AUC on the original form (``cnn``: its
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
