"""Notebook 05's steps: patient-grouped folds, the cross-validated classifier, the forms of
every image per condition, the size-only baseline and the paper's Fig 9."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrsr_utils.classification import fig9, kermany_images, size_baseline, study_classifier
from cxrsr_utils.classification import folds as classifier_folds
from cxrsr_utils.classification import network as classifier
from cxrsr_utils.classification import steps as classify_steps
from cxrsr_utils.classification.kermany_images import KermanyImages
from cxrsr_utils.classification.steps import Form
from cxrsr_utils.core.errors import MissingStepError
from cxrsr_utils.core.layout import EVAL_CONDITIONS, Paths
from cxrsr_utils.core.params import load_params
from cxrsr_utils.data_prep import steps as data
from cxrsr_utils.evaluation import methods as eval_methods
from cxrsr_utils.evaluation import steps as evaluate
from cxrsr_utils.external import sources
from cxrsr_utils.images import radiographs
from cxrsr_utils.reporting import classifier_figures, provenance
from cxrsr_utils.sr import infer

TINY = 96  # the classifier's smallest input side


def _grouped_table(n_patients: int = 23, k: int = 5, seed: int = 0) -> pd.DataFrame:
    """Images of patients with 1-4 images each, every patient's images in one fold."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        fold, label = p % k, int(rng.integers(0, 2))
        for i in range(int(rng.integers(1, 5))):
            name = ("PNEUMONIA" if label else "NORMAL") + f"/p{p}_{i}.png"
            rows.append({"image": name, "patient": f"p{p}", "fold": fold, "label": label})
    table = pd.DataFrame(rows).sample(frac=1, random_state=seed).reset_index(drop=True)
    return table.assign(path=table.image, sha256=[f"{i:064x}" for i in range(len(table))])


# -- the folds --------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [3, 5])
def test_grouped_folds_test_every_image_once_and_never_a_patient_twice(k: int) -> None:
    table = _grouped_table(k=k)
    classifier_folds.check_grouped_folds(table)
    plan = classifier_folds.fold_plan(table.fold)
    assert [s.test for s in plan] == list(range(k))
    tested = np.zeros(len(table), int)
    for split in plan:
        assert split.validation != split.test and split.validation == (split.test + 1) % k
        masks = split.masks(table.fold)
        # Every image has exactly one role in a split.
        assert (masks["train"].astype(int) + masks["validation"] + masks["test"] == 1).all()
        assert masks["train"].any()
        train, val, test = (set(table.patient[masks[r]]) for r in ("train", "validation", "test"))
        assert not train & test and not val & test and not train & val
        tested += masks["test"]
    assert (tested == 1).all()  # each image is out of fold in exactly one split
    smoke = classifier_folds.fold_plan(table.fold, cv=False)
    assert smoke == [classifier_folds.FoldSplit(test=0, validation=1)]


def test_folds_are_checked() -> None:
    table = _grouped_table()
    several = table.patient.value_counts().index[0]  # a patient with more than one image
    assert (table.patient == several).sum() > 1
    moved = table.copy()
    moved.loc[(moved.patient == several).idxmax(), "fold"] += 1
    with pytest.raises(ValueError, match=f"more than one fold \\(e.g. {several}\\)"):
        classifier_folds.check_grouped_folds(moved)
    with pytest.raises(ValueError, match="at least 3"):
        classifier_folds.n_folds([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"0..K-1"):
        classifier_folds.n_folds([0, 1, 3])
    with pytest.raises(MissingStepError, match="no fold"):
        classifier_folds.n_folds(pd.array([0, 1, 2, None], dtype="Int64"))


def test_folds_table_counts_each_part() -> None:
    table = _grouped_table(k=4)
    plan = classifier_folds.fold_plan(table.fold)
    folds = classifier_folds.folds_table(table, plan)
    assert folds.test_fold.tolist() == [0, 1, 2, 3]
    assert folds.validation_fold.tolist() == [1, 2, 3, 0]
    parts = ("train", "validation", "test")
    assert (folds[[f"{p}_images" for p in parts]].sum(axis=1) == len(table)).all()
    assert folds.test_images.sum() == len(table)
    fold1 = table[table.fold == 1]
    row = folds.iloc[0]  # tests fold 0, validates on fold 1
    assert (row.validation_images, row.validation_patients) == (
        len(fold1),
        fold1.patient.nunique(),
    )
    assert row.validation_pneumonia == fold1.label.sum()


# -- the cross-validated classifier -----------------------------------------------------------


def _images(k: int = 4) -> KermanyImages:
    table = _grouped_table(k=k)
    x = np.random.default_rng(1).random((len(table), TINY, TINY)).astype(np.float32)
    return KermanyImages(table, x, table.label.to_numpy())


def _spy(monkeypatch, seen: list) -> None:
    def train_or_load(folder, settings, x, y, **kwargs):
        seen.append({"folder": folder, "settings": settings, "x": x, "y": y, **kwargs})
        history = pd.DataFrame(
            {
                "epoch": [1, 2, 3],
                "loss": [0.7, 0.6, 0.5],
                "accuracy": [0.5, 0.6, 0.7],
                "val_loss": [0.69, 0.6, 0.65],
                "val_accuracy": [0.5, 0.6, 0.6],
                "chosen": [False, True, False],
            }
        )
        return f"model {settings['test_fold']}", history, False

    monkeypatch.setattr(study_classifier, "train_or_load", train_or_load)


@pytest.mark.parametrize("cv", [True, False])
def test_classifier_for_trains_one_model_per_split(tmp_path, monkeypatch, cv: bool) -> None:
    seen: list = []
    _spy(monkeypatch, seen)
    params = load_params("quick", {"classifier.cv": cv, "classifier.image_size": TINY})
    paths = Paths(params, root=tmp_path)
    images = _images(k=4)
    clf = study_classifier.classifier_for(params, paths, images)
    tested = [0, 1, 2, 3] if cv else [0]
    assert list(clf.models) == tested and clf.models[0] == "model 0"
    cfg, fold = params.classifier, images.table.fold.to_numpy()
    for call, test in zip(seen, tested, strict=True):
        val = (test + 1) % 4
        assert call["folder"] == paths.classifier / f"fold_{test}"
        train = (fold != test) & (fold != val)
        np.testing.assert_array_equal(call["x"], images.x[train])
        np.testing.assert_array_equal(call["val_images"], images.x[fold == val])
        np.testing.assert_array_equal(call["val_labels"], images.y[fold == val])
        assert call["settings"]["test_fold"] == test and call["settings"]["validation_fold"] == val
        assert call["settings"]["train_data"] == data.manifest_digest(images.table[train])
        assert (call["patience"], call["min_epochs"], call["epochs"]) == (
            cfg.patience,
            cfg.min_epochs,
            cfg.epochs,
        )
        assert call["seed"] == params.seed and call["image_size"] == TINY
    history = pd.read_csv(paths.tables / "05_training_history.csv")
    assert history.test_fold.unique().tolist() == tested and len(history) == 3 * len(tested)
    folds = pd.read_csv(paths.tables / "05_folds.csv")
    assert folds.chosen_epoch.tolist() == [2] * len(tested)
    assert folds.epochs_run.tolist() == [3] * len(tested)
    assert "every fold" in clf.origin if cv else "fold 0 only" in clf.origin
    fig = classifier_figures.fold_training_curves(clf.history)
    assert [ax.get_xlabel() for ax in fig.axes] == ["epoch", "epoch"]
    labels = fig.axes[1].get_legend_handles_labels()[1]
    assert "test fold 0: validation (fold 1)" in labels


def test_classifier_for_takes_a_given_model_for_every_fold(tmp_path) -> None:
    import keras

    keras.utils.set_random_seed(0)
    given = classifier.save_classifier(classifier.build_classifier(TINY), tmp_path / "g.keras")
    params = load_params("quick", {"classifier.model_path": str(given)})
    paths = Paths(params, root=tmp_path)
    clf = study_classifier.classifier_for(params, paths, _images(k=3))
    assert clf.history is None and str(given) in clf.origin
    assert list(clf.models) == [0, 1, 2]  # predicts every image, trained on none of them
    recorded = provenance.sources_used(paths)["classifier"]
    assert recorded == {"path": str(given), "sha256": sources.sha256_file(given)}
    assert not paths.classifier.exists()


# -- images and forms from a run's folder -----------------------------------------------------


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    radiographs.write_png(path, radiographs.to_pixels(image, 255))


def _prepared_run(tmp_path: Path) -> tuple:
    """A run folder as notebook 01 leaves it (tiny Kermany pairs, 3 folds)."""
    params = load_params("quick", {"classifier.image_size": TINY})
    paths = Paths(params, root=tmp_path)
    rng = np.random.default_rng(2)
    manifest, split = [], []
    for n in range(9):
        name = ("NORMAL" if n % 2 == 0 else "PNEUMONIA", f"IM-{n:04d}-0001")
        image = f"{name[0]}/{name[1]}.png"
        for role, side in (("hr", 16), *((r, 4) for r in EVAL_CONDITIONS.values())):
            path = paths.pair_folder("kermany", role) / image
            _write(path, rng.random((side, side)))
            manifest.append(
                {
                    "path": path.relative_to(paths.data).as_posix(),
                    "sha256": f"{n:064x}",
                    "dataset": "kermany",
                    "split": "cv",
                    "role": role,
                    "label": n % 2,
                    "fold": n % 3,
                    "patient": f"IM-{n:04d}",
                }
            )
        split.append(
            {
                "file": f"{name[1]}.jpeg",
                "label": n % 2,
                "class_name": name[0],
                "patient": f"IM-{n:04d}",
                "fold": n % 3,
                "width": 1000 + 10 * n,
                "height": 800 + n,
                "note": "",
            }
        )
    pd.DataFrame(manifest).to_csv(paths.data_manifest, index=False)
    pd.DataFrame(split).to_csv(paths.tables / "01_kermany_split.csv", index=False)
    return params, paths


def test_load_kermany_reads_pairs_folds_patients_and_original_sizes(tmp_path) -> None:
    params, paths = _prepared_run(tmp_path)
    images = kermany_images.load_kermany(params, paths)
    t = images.table
    assert t.image.is_monotonic_increasing and len(t) == 9
    assert t.image[0] == "NORMAL/IM-0000-0001.png"
    assert t.hr[0] == paths.pair_folder("kermany", "hr") / "NORMAL/IM-0000-0001.png"
    assert t.lr_degraded[0] == paths.pair_folder("kermany", "lr_degraded") / t.image[0]
    first = t.set_index("image").loc["PNEUMONIA/IM-0003-0001.png"]
    assert (first.width, first.height, first.fold, first.label) == (1030, 803, 0, 1)
    assert images.x.shape == (9, TINY, TINY) and images.y.tolist() == t.label.tolist()
    assert images.describe() == "9 images (4 pneumonia) of 9 patients in 3 patient-grouped folds"
    # A patient in two folds is refused.
    manifest = pd.read_csv(paths.data_manifest)
    manifest.loc[manifest.patient == "IM-0001", "patient"] = "IM-0000"
    manifest.to_csv(paths.data_manifest, index=False)
    with pytest.raises(ValueError, match="more than one fold"):
        kermany_images.load_kermany(params, paths)


class _Upscale:
    """A stand-in network: nearest-neighbour x4, two inputs per batch."""

    options = infer.InferOptions(progress=False, batch_size=2)

    def upscale_float(self, image: np.ndarray) -> np.ndarray:
        return image.repeat(4, 0).repeat(4, 1)

    def upscale_floats(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return [self.upscale_float(image) for image in images]


def test_load_forms_makes_every_form_per_condition(tmp_path, monkeypatch) -> None:
    params, paths = _prepared_run(tmp_path)
    images = kermany_images.load_kermany(params, paths)
    networks = [
        eval_methods.Method("pretrained", "network", _Upscale(), "stand-in", "ab" * 32),  # type: ignore[arg-type]
        eval_methods.Method("finetuned:l1", "network", _Upscale(), "stand-in", "cd" * 32),  # type: ignore[arg-type]
    ]
    resize = eval_methods.Method("bicubic", "resize", _Upscale(), "stand-in")  # type: ignore[arg-type]
    monkeypatch.setattr(evaluate, "study_methods", lambda p, w: ([resize, *networks], []))
    forms = classify_steps.load_forms(params, paths, images)
    assert [f.name for f in forms] == [
        "original",
        "LR (bicubic)",
        "SR pretrained (bicubic)",
        "SR finetuned:l1 (bicubic)",
        "LR (degraded)",
        "SR pretrained (degraded)",
        "SR finetuned:l1 (degraded)",
    ]
    assert forms[0].images is images.x
    by_name = {f.name: f for f in forms}
    assert by_name["LR (degraded)"].images == list(images.table.lr_degraded)
    sr = by_name["SR finetuned:l1 (degraded)"]
    assert (sr.kind, sr.condition, sr.method) == ("SR", "degraded", "finetuned:l1")
    assert sr.images[0] == paths.sr_output(
        f"finetuned_l1-{'cd' * 6}", "kermany", images.table.image[0], "degraded"
    )
    # Written from that condition's LR, as notebook 04 writes them.
    lr = radiographs.read_radiograph(images.table.lr_degraded[0]).as_float()
    written = radiographs.read_radiograph(sr.images[0]).as_float()
    np.testing.assert_allclose(written, _Upscale().upscale_float(lr), atol=1 / 255)
    meta = classify_steps.forms_table(forms)
    assert meta.columns.tolist() == ["form", "kind", "condition", "method"]
    assert meta.condition.tolist()[:2] == ["", "bicubic"]


class _FoldModel:
    """A stand-in fold model: the mean pixel of each image as its probability."""

    def __init__(self) -> None:
        self.input_shape = (None, TINY, TINY, 3)

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        return batch.mean(axis=(1, 2, 3))[:, None]


def test_classify_forms_saves_out_of_fold_tables_with_the_forms(tmp_path) -> None:
    params, paths = _prepared_run(tmp_path)
    images = kermany_images.load_kermany(params, paths)
    forms = [
        Form("original", "original", "", "", images.x),
        Form("LR (bicubic)", "LR", "bicubic", "", list(images.table.lr)),
        Form("SR finetuned:a (bicubic)", "SR", "bicubic", "finetuned:a", images.x * 0.9),
    ]
    plan = classifier_folds.fold_plan(images.table.fold)
    clf = study_classifier.StudyClassifier(
        {s.test: _FoldModel() for s in plan}, plan, pd.DataFrame(), None, "stand-in"
    )
    summary, predictions = classify_steps.classify_forms(params, paths, clf, images, forms)
    assert summary.form.tolist() == [f.name for f in forms]
    assert summary.columns[:5].tolist() == ["form", "kind", "condition", "method", "n"]
    assert summary.n.tolist() == [9, 9, 9] and summary.equivalence[0] == "reference"
    assert (predictions.groupby("form").image.nunique() == 9).all()
    saved = pd.read_csv(paths.tables / "05_forms_summary.csv")
    assert saved.form.tolist() == summary.form.tolist()
    assert fig9.best_finetuned_form(summary) == "SR finetuned:a (bicubic)"
    shown = fig9.fig9_forms(summary)
    assert shown == ["original", "LR (bicubic)", "SR finetuned:a (bicubic)"]
    rows = fig9.sample_predictions(
        forms, predictions, images.table, shown, image_size=TINY, per_class=2
    )
    assert [len(r) for r in rows] == [4, 4, 4]
    # NORMAL first: the first two NORMAL images of the table, then the first two PNEUMONIA.
    first = predictions[predictions.form == "original"]
    assert rows[0][0][0].startswith("original\ntrue NORMAL\npred ")
    assert rows[0][2][0].startswith("original\ntrue PNEUMONIA\npred ")
    np.testing.assert_array_equal(rows[0][0][1], images.x[0])
    np.testing.assert_allclose(rows[2][1][1], images.x[1] * 0.9, atol=1e-6)
    assert first.image.iloc[0] == images.table.image[0]
    fig = classifier_figures.prediction_grid(rows)
    assert len(fig.axes) == 3 * 4
    fig = classifier_figures.roc_curves(predictions, panel_column="condition")
    assert [ax.get_xlabel() for ax in fig.axes] == ["false positive rate (1 - specificity)"]
    assert len(fig.axes[0].get_lines()) == 3 + 1  # every form, and the chance line
    assert len(classifier_figures.confusion_matrices(summary, ncols=2).axes) == 4
    classifier_figures.auc_differences(summary, params.classifier.equivalence_margin)


def test_best_finetuned_form_picks_the_highest_auc_among_variants() -> None:
    summary = pd.DataFrame(
        {
            "form": ["original", "SR pretrained (bicubic)", "SR finetuned:b (degraded)",
                     "SR finetuned:a (bicubic)", "SR finetuned:c (bicubic)"],
            "kind": ["original", "SR", "SR", "SR", "SR"],
            "condition": ["", "bicubic", "degraded", "bicubic", "bicubic"],
            "method": ["", "pretrained", "finetuned:b", "finetuned:a", "finetuned:c"],
            "auc": [0.99, 0.98, 0.9, 0.9, 0.8],
        }
    )  # fmt: skip
    # A tie goes to name order; the un-tuned network is not a candidate.
    assert fig9.best_finetuned_form(summary) == "SR finetuned:a (bicubic)"
    summary.loc[2, "auc"] = 0.95
    assert fig9.fig9_forms(summary) == [
        "original",
        "LR (degraded)",
        "SR finetuned:b (degraded)",
    ]
    assert fig9.fig9_forms(summary.iloc[:2]) == ["original"]


# -- the size-only baseline -------------------------------------------------------------------


def _sized(table: pd.DataFrame, separable: bool, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(table)
    if separable:  # NORMAL large, PNEUMONIA small, as in the mirror
        width = np.where(table.label == 0, 1700, 1150) + rng.normal(0, 60, n)
        height = np.where(table.label == 0, 1400, 760) + rng.normal(0, 60, n)
    else:
        width, height = rng.normal(1400, 200, n), rng.normal(1100, 200, n)
    return table.assign(width=width.round(), height=height.round())


def test_size_baseline_separates_classes_that_size_separates() -> None:
    table = _sized(_grouped_table(n_patients=40, k=5), separable=True)
    plan = classifier_folds.fold_plan(table.fold)
    size = size_baseline.out_of_fold(table, plan)
    assert size.image.tolist() == table.image.tolist()  # every image once, out of fold
    assert size.fold.tolist() == table.fold.tolist()
    cnn = table[["image", "label"]].assign(probability=table.label * 0.8 + 0.1)
    result, sentence = size_baseline.compare_with_cnn(size, cnn, n_resamples=200)
    assert result.model.tolist() == ["size-only logistic regression", "CNN (original)"]
    assert result.auc[0] == pytest.approx(1.0)
    assert "Size alone could explain the CNN's AUC" in sentence
    guessing = cnn.assign(probability=np.random.default_rng(0).random(len(cnn)))
    _, sentence = size_baseline.compare_with_cnn(size, guessing, n_resamples=200)
    assert "separates the classes better than the CNN" in sentence
    # Only fold 0 tested (a smoke run): only its images are predicted.
    smoke = size_baseline.out_of_fold(table, plan[:1])
    assert smoke.image.tolist() == table.image[table.fold == 0].tolist()


def test_size_baseline_at_chance_does_not_explain_a_good_cnn() -> None:
    table = _sized(_grouped_table(n_patients=60, k=5, seed=3), separable=False, seed=3)
    size = size_baseline.out_of_fold(table, classifier_folds.fold_plan(table.fold))
    cnn = table[["image", "label"]].assign(probability=table.label * 0.8 + 0.1)
    result, sentence = size_baseline.compare_with_cnn(size, cnn, n_resamples=500)
    assert result.auc[1] == 1.0 and result.auc[0] < 0.75
    assert result.auc_diff_low[1] > 0
    assert sentence.endswith("Size alone does not explain the CNN's AUC.")
    assert "Image size alone (logistic regression on width, height and aspect)" in sentence
    with pytest.raises(ValueError, match="same images"):
        size_baseline.compare_with_cnn(size.iloc[1:], cnn)
