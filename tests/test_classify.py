"""The pneumonia classifier: architecture, images in, augmentation, determinism, early
stopping, saving, and the evaluation of forms (its statistics are tested in test_stats.py;
notebook 05's steps, folds and the size baseline in test_classify_steps.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from cxrsr_utils.classification import forms as classify
from cxrsr_utils.classification import images as classifier_images
from cxrsr_utils.classification import network as classifier
from cxrsr_utils.classification import training as classifier_training
from cxrsr_utils.core.vocabulary import KERMANY_CLASSES
from cxrsr_utils.images import radiographs
from cxrsr_utils.stats import classifier_scores, rounding

TINY = 96  # smallest sizes still pass five conv+pool stages (>= 94); keeps CPU tests fast


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    keras.utils.set_random_seed(0)
    return classifier.build_classifier(TINY)


@pytest.fixture(scope="module")
def kermany_sample(kermany_root: Path) -> tuple[list[Path], np.ndarray]:
    files = []
    for name in KERMANY_CLASSES:
        files += sorted((kermany_root / "train" / name).glob("*.jpeg"))[:5]
    return files, np.array([classifier_images.label_from_path(f) for f in files])


# -- the network ------------------------------------------------------------------------------


def test_reference_architecture_and_parameter_count() -> None:
    model = classifier.build_classifier()
    assert classifier.count_trainable_parameters(model) == 1_983_009
    assert model.get_layer("flatten").output.shape == (None, 6272)
    assert model.input_shape == (None, 300, 300, 3)
    assert model.output_shape == (None, 1)

    structure = []
    for layer in model.layers:
        cfg = layer.get_config()
        kind = type(layer).__name__
        if kind == "Conv2D":
            structure.append(
                (kind, cfg["filters"], tuple(cfg["kernel_size"]), cfg["padding"], cfg["activation"])
            )
        elif kind == "MaxPooling2D":
            structure.append((kind, tuple(cfg["pool_size"])))
        elif kind == "Dense":
            structure.append((kind, cfg["units"], cfg["activation"]))
        else:
            structure.append((kind,))
    conv = [
        s
        for f in (16, 32, 64, 128, 128)
        for s in (("Conv2D", f, (3, 3), "valid", "relu"), ("MaxPooling2D", (2, 2)))
    ]
    assert structure == conv + [
        ("Flatten",),
        ("Dense", 256, "relu"),
        ("Dense", 512, "relu"),
        ("Dense", 1, "sigmoid"),
    ]
    assert type(model.optimizer).__name__ == "Adam"
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert model.loss == "binary_crossentropy"
    # Augmentation lives in the input pipeline, never in the model used for evaluation.
    assert not any(type(layer).__name__.startswith("Random") for layer in model.layers)


def test_image_size_floor() -> None:
    assert classifier.min_image_size() == 94
    with pytest.raises(ValueError, match="at least 94"):
        classifier.build_classifier(93)


# -- images in --------------------------------------------------------------------------------


def test_label_from_path() -> None:
    assert classifier_images.label_from_path("x/train/NORMAL/a.jpeg") == 0
    assert classifier_images.label_from_path("x/test/PNEUMONIA/b.jpeg") == 1
    with pytest.raises(ValueError, match="NORMAL or PNEUMONIA"):
        classifier_images.label_from_path("x/train/COVID/c.jpeg")


def test_prepare_images_resizes_like_io_and_checks_input() -> None:
    rng = np.random.default_rng(1)
    sr = rng.random((2, 256, 256)).astype(np.float32)
    out = classifier_images.prepare_images(sr, image_size=300)
    assert out.shape == (2, 300, 300) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], np.clip(radiographs.resize(sr[0], (300, 300)), 0, 1))
    assert out.min() >= 0 and out.max() <= 1
    # Already the right size: untouched.
    np.testing.assert_array_equal(classifier_images.prepare_images(out, image_size=300), out)
    # Three equal channels are the gray image (luma weights sum to one).
    rgb = np.repeat(sr[:1, ..., None], 3, axis=-1)
    np.testing.assert_allclose(
        classifier_images.prepare_images(rgb, image_size=256)[0], sr[0], rtol=0, atol=1e-6
    )
    with pytest.raises(TypeError, match="floats"):
        classifier_images.prepare_images([np.zeros((8, 8), np.uint8)], image_size=8)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        classifier_images.prepare_images([np.full((8, 8), 255.0)], image_size=8)


def test_load_images_reads_real_radiographs(kermany_sample) -> None:
    files, _ = kermany_sample
    loaded = classifier_images.load_images(files[:2], image_size=TINY)
    expected = classifier_images.prepare_images(
        [radiographs.read_radiograph(f).as_float() for f in files[:2]], image_size=TINY
    )
    assert loaded.shape == (2, TINY, TINY)
    np.testing.assert_array_equal(loaded, expected)


# -- augmentation -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(40, 40), (30, 50)])
@pytest.mark.parametrize(
    "params", [(15.0, 0.85, 1.1, 1.0), (-10.0, 1.2, 0.9, 0.0), (0.2, 1.0, 1.0, 1.0)]
)
def test_augmentation_matches_legacy_image_data_generator(shape, params) -> None:
    legacy = pytest.importorskip("keras.src.legacy.preprocessing.image")
    gen = legacy.ImageDataGenerator(shear_range=20, zoom_range=0.2, horizontal_flip=True)
    image = np.random.default_rng(2).random(shape).astype(np.float32)
    shear, zx, zy, flip = params
    ref = gen.apply_transform(
        image[..., None] * 255, {"shear": shear, "zx": zx, "zy": zy, "flip_horizontal": flip}
    )[..., 0]
    ours = classifier_images.augment_image(image, np.array(params))
    np.testing.assert_allclose(ours, ref / 255, rtol=0, atol=1e-5)
    if shear != 0.2:  # a real transform moved pixels
        assert not np.allclose(ours, image)


def test_augmentation_draws_follow_the_reference_ranges() -> None:
    draws = classifier_images.draw_augmentations(
        4000, np.random.default_rng(3), shear_degrees=0.2, zoom=0.2
    )
    assert np.abs(draws[:, 0]).max() <= 0.2 and np.abs(draws[:, 0]).max() > 0.19
    assert draws[:, 1:3].min() >= 0.8 and draws[:, 1:3].max() <= 1.2
    assert not np.array_equal(draws[:, 1], draws[:, 2])  # zx and zy independent
    assert 0.45 < draws[:, 3].mean() < 0.55
    off = classifier_images.draw_augmentations(
        5, np.random.default_rng(3), shear_degrees=0, zoom=0, horizontal_flip=False
    )
    image = np.random.default_rng(4).random((20, 20)).astype(np.float32)
    np.testing.assert_array_equal(classifier_images.augment_image(image, off[0]), image)
    a = classifier_images.augment_images(image[None].repeat(3, 0), seed=5)
    b = classifier_images.augment_images(image[None].repeat(3, 0), seed=5)
    np.testing.assert_array_equal(a, b)


# -- training ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_training_is_deterministic(kermany_sample) -> None:
    files, labels = kermany_sample
    images = classifier_images.load_images(files, image_size=TINY)
    train = np.r_[0:4, 5:9]
    val = np.r_[4, 9]
    kwargs = dict(
        val_images=images[val],
        val_labels=labels[val],
        image_size=TINY,
        epochs=2,
        batch_size=3,  # a partial last batch, as the reference's generator made
        seed=7,
    )
    model_a, hist_a = classifier_training.train_classifier(images[train], labels[train], **kwargs)
    model_b, hist_b = classifier_training.train_classifier(images[train], labels[train], **kwargs)
    assert list(hist_a.columns) == [
        "epoch",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "chosen",
    ]
    assert hist_a["epoch"].tolist() == [1, 2]
    assert hist_a["chosen"].tolist() == [False, True]  # no early stopping: the last epoch
    assert np.isfinite(hist_a.drop(columns=["epoch", "chosen"]).to_numpy(float)).all()
    pd.testing.assert_frame_equal(hist_a, hist_b, check_exact=True)
    for wa, wb in zip(model_a.get_weights(), model_b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    # The seed matters: another one trains differently.
    _, hist_c = classifier_training.train_classifier(
        images[train], labels[train], **{**kwargs, "seed": 8}
    )
    assert not hist_a["loss"].equals(hist_c["loss"])


@pytest.mark.slow
def test_early_stopping_keeps_the_epoch_of_the_lowest_validation_loss() -> None:
    # Labels the images cannot predict: the validation loss soon stops improving.
    rng = np.random.default_rng(3)
    images = rng.random((12, TINY, TINY)).astype(np.float32)
    labels = np.arange(12) % 2
    kwargs = dict(image_size=TINY, epochs=12, batch_size=4, learning_rate=1e-2, seed=1)
    val = dict(val_images=images[8:], val_labels=labels[8:])
    model, history = classifier_training.train_classifier(
        images[:8], labels[:8], **val, patience=2, min_epochs=1, **kwargs
    )
    chosen = history[history["chosen"]]
    assert len(chosen) == 1
    best = int(chosen["epoch"].iloc[0])
    # The best epoch after the warm-up; training ran on for `patience` epochs past it, no more.
    after = history[history["epoch"] > 1]
    assert chosen["val_loss"].iloc[0] == after["val_loss"].min()
    assert len(history) == best + 2 < 12  # stopped early
    # The returned weights are the chosen epoch's: its validation loss again.
    rgb = np.repeat(images[8:][..., None], 3, axis=-1)
    loss, _ = model.evaluate(rgb, labels[8:].astype("float32"), verbose=0)
    assert loss == pytest.approx(chosen["val_loss"].iloc[0], rel=1e-4)
    with pytest.raises(ValueError, match="needs validation images"):
        classifier_training.train_classifier(images, labels, patience=2, **kwargs)
    with pytest.raises(ValueError, match="min_epochs"):
        classifier_training.train_classifier(
            images, labels, **val, patience=2, min_epochs=12, **kwargs
        )


def test_training_rejects_bad_labels() -> None:
    images = np.zeros((2, TINY, TINY), np.float32)
    with pytest.raises(ValueError, match="0 \\(NORMAL\\) or 1"):
        classifier_training.train_classifier(images, [0, 2], image_size=TINY, epochs=1)
    with pytest.raises(ValueError, match="one label each"):
        classifier_training.train_classifier(images, [0], image_size=TINY, epochs=1)


# -- saving and loading -----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_save_load_round_trip(tiny_model, tmp_path: Path, suffix: str) -> None:
    images = np.random.default_rng(6).random((5, TINY, TINY)).astype(np.float32)
    before = classify.predict_probabilities(tiny_model, images, batch_size=2)
    path = tmp_path / f"clf{suffix}"
    if suffix == ".keras":
        classifier.save_classifier(tiny_model, path)
        assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left
    else:
        tiny_model.save(path)  # a legacy H5 file, as older Keras wrote them
    loaded = classifier.load_classifier(path)
    np.testing.assert_array_equal(classify.predict_probabilities(loaded, images), before)
    # Predictions do not change between calls: the model has no random layers.
    np.testing.assert_array_equal(classify.predict_probabilities(loaded, images), before)


def test_save_needs_keras_suffix(tiny_model, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.keras suffix"):
        classifier.save_classifier(tiny_model, tmp_path / "clf.h5")


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.keras"
    with pytest.raises(classifier.ClassifierLoadError, match="missing.keras: no such model file"):
        classifier.load_classifier(missing)
    for name in ("corrupt.keras", "corrupt.h5"):
        bad = tmp_path / name
        bad.write_bytes(b"not a model at all" * 10)
        with pytest.raises(classifier.ClassifierLoadError, match=f"{name}: cannot be loaded"):
            classifier.load_classifier(bad)
    odd = tmp_path / "model.pb"
    odd.write_bytes(b"x")
    with pytest.raises(classifier.ClassifierLoadError, match="model.pb: unknown model format"):
        classifier.load_classifier(odd)


def test_load_rejects_a_model_that_is_not_the_classifier(tmp_path: Path) -> None:
    import keras

    other = keras.Sequential(
        [keras.Input((TINY, TINY, 3)), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    path = classifier.save_classifier(other, tmp_path / "other.keras")
    with pytest.raises(classifier.ClassifierLoadError, match="other.keras: model output shape"):
        classifier.load_classifier(path)


# -- the forms of the same images -----------------------------------------------------------


def _predictions(form: str, labels: list[int], preds: list[int]) -> pd.DataFrame:
    prob = np.where(np.array(preds) == 1, 0.9, 0.1)
    return pd.DataFrame(
        {
            "image": [f"img{i}.png" for i in range(len(labels))],
            "label": labels,
            "form": form,
            "probability": prob,
            "prediction": preds,
            "correct": np.array(preds) == np.array(labels),
        }
    )


def test_summarize_forms_on_hand_made_predictions() -> None:
    labels = [0, 0, 0, 0, 1, 1, 1, 1]
    table = pd.concat(
        [
            _predictions("original", labels, [0, 0, 0, 1, 1, 1, 1, 1]),  # 7/8 right
            _predictions("sr", labels, [0, 1, 1, 1, 1, 1, 1, 0]).iloc[::-1],  # 4/8, shuffled
        ],
        ignore_index=True,
    )
    summary = classify.summarize_forms(table, n_resamples=200, seed=0).set_index("form")
    ref, sr = summary.loc["original"], summary.loc["sr"]
    assert ref["accuracy"] == 7 / 8 and sr["accuracy"] == 4 / 8
    assert (ref["tn"], ref["fp"], ref["fn"], ref["tp"]) == (3, 1, 0, 4)
    assert (sr["tn"], sr["fp"], sr["fn"], sr["tp"]) == (1, 3, 1, 3)
    assert sr["sensitivity"] == 3 / 4 and sr["specificity"] == 1 / 4
    assert ref["auc"] == pytest.approx(classifier_scores.roc_auc(labels, [0.1] * 3 + [0.9] * 5))
    # Discordant: sr wrong where original right on img1, img2, img7; never the reverse.
    assert (sr["only_reference_correct"], sr["only_form_correct"]) == (3, 0)
    assert sr["mcnemar_p"] == pytest.approx(scipy_stats.binomtest(3, 3, 0.5).pvalue)
    assert np.isnan(ref["mcnemar_p"])
    assert ref["accuracy_low"] <= 7 / 8 <= ref["accuracy_high"]
    assert ref["loss"] == pytest.approx(-np.mean(np.log([0.9] * 7 + [0.1])))
    rounded = rounding.round_table(summary.reset_index(), 2)
    assert rounded.loc[1, "accuracy"] == 0.5 and rounded.loc[0, "loss"] == round(ref["loss"], 2)
    with pytest.raises(ValueError, match="reference form 'hr'"):
        classify.summarize_forms(table, reference_form="hr")
    with pytest.raises(ValueError, match="same held-out images"):
        classify.summarize_forms(table.iloc[:-1])


def test_evaluate_forms_with_a_model(tiny_model) -> None:
    rng = np.random.default_rng(10)
    original = rng.random((6, TINY, TINY)).astype(np.float32)
    bigger = np.stack([radiographs.resize(img, (128, 128)) for img in original]).clip(0, 1)
    labels = [0, 1, 0, 1, 0, 1]
    files = [f"f{i}.png" for i in range(6)]
    summary, preds = classify.evaluate_forms(
        tiny_model,
        {"original": original, "same": original.copy(), "sr128": bigger},
        labels,
        files,
        n_resamples=100,
    )
    assert list(preds.columns) == ["image", "label", "form", "probability", "prediction", "correct"]
    assert len(preds) == 18 and preds["form"].unique().tolist() == ["original", "same", "sr128"]
    direct = classify.predict_probabilities(tiny_model, original)
    np.testing.assert_array_equal(preds.loc[preds["form"] == "original", "probability"], direct)
    same = summary.set_index("form").loc["same"]
    assert (same["only_reference_correct"], same["only_form_correct"], same["mcnemar_p"]) == (
        0,
        0,
        1.0,
    )
    assert summary["n"].tolist() == [6, 6, 6]
    # The loss column is the loss Keras' evaluate reports (Fig 11 of the paper plots it).
    rgb = np.repeat(original[..., None], 3, axis=-1)
    keras_loss, keras_acc = tiny_model.evaluate(rgb, np.array(labels, "float32"), verbose=0)
    first = summary.iloc[0]
    assert first["loss"] == pytest.approx(keras_loss, rel=1e-4)
    assert first["accuracy"] == pytest.approx(keras_acc)
    with pytest.raises(ValueError, match="form 'bad' has 2 images"):
        classify.predict_forms(tiny_model, {"bad": original[:2]}, labels, files)


@pytest.mark.slow
def test_train_or_load_resumes_and_retrains_on_new_settings(tmp_path, kermany_sample):
    files, labels = kermany_sample
    images = classifier_images.load_images(files, image_size=TINY)
    kwargs = dict(image_size=TINY, epochs=1, batch_size=4, seed=0)
    _, history, loaded = classify.train_or_load(tmp_path, {"a": 1}, images, labels, **kwargs)
    assert not loaded and (tmp_path / "model.keras").is_file()
    model, again, loaded = classify.train_or_load(tmp_path, {"a": 1}, images, labels, **kwargs)
    assert loaded
    pd.testing.assert_frame_equal(history, again, check_dtype=False)
    _, _, loaded = classify.train_or_load(tmp_path, {"a": 2}, images, labels, **kwargs)
    assert not loaded


def test_summarize_forms_compares_auc_with_the_original_and_tests_equivalence() -> None:
    rng = np.random.default_rng(4)
    labels = np.repeat([0, 1], 30)
    prob = np.clip(labels * 0.5 + rng.random(60) * 0.5, 0, 1)  # AUC well above 0.5

    def form(name: str, p: np.ndarray) -> pd.DataFrame:
        pred = (p >= 0.5).astype(int)
        return pd.DataFrame(
            {
                "image": [f"i{i}" for i in range(60)],
                "label": labels,
                "form": name,
                "probability": p,
                "prediction": pred,
                "correct": pred == labels,
            }
        )

    table = pd.concat(
        [form("original", prob), form("copy", prob.copy()), form("flipped", 1 - prob)],
        ignore_index=True,
    )
    summary = classify.summarize_forms(
        table, n_resamples=300, equivalence_margin=0.05, equivalence_alpha=0.05
    ).set_index("form")
    assert summary.loc["original", "equivalence"] == "reference"
    assert np.isnan(summary.loc["original", "auc_diff"])
    copy = summary.loc["copy"]
    assert (copy.auc_diff, copy.auc_diff_low, copy.auc_diff_high) == (0.0, 0.0, 0.0)
    assert copy.equivalence == "equivalent" and copy.tost_p == 0.0
    flipped = summary.loc["flipped"]
    assert flipped.auc_diff == pytest.approx(1 - 2 * summary.loc["original", "auc"])
    assert flipped.auc_diff_high < -0.05 and flipped.equivalence == "lower"
    assert set(classify.SUMMARY_VIEW) <= set(summary.reset_index().columns)
    # Without a margin, no comparison columns (the summary of one model's forms as before).
    assert "auc_diff" not in classify.summarize_forms(table, n_resamples=50).columns


class _FoldModel:
    """Stands in for a fold's Keras model: predicts its own fold number / 10 for any image."""

    def __init__(self, fold: int) -> None:
        self.fold = fold
        self.input_shape = (None, TINY, TINY, 3)

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        return np.full((len(batch), 1), self.fold / 10)


def test_out_of_fold_predicts_each_image_once_per_form_by_its_folds_model() -> None:
    folds = np.array([2, 0, 1, 2, 0, 1, 1, 0, 2])
    table = pd.DataFrame(
        {"image": [f"i{i}.png" for i in range(9)], "label": np.arange(9) % 2, "fold": folds}
    )
    images = np.zeros((9, TINY, TINY), np.float32)
    forms = {"original": images, "LR (bicubic)": list(images)}
    models = {k: _FoldModel(k) for k in range(3)}
    out = classify.predict_out_of_fold(models, forms, table)
    assert len(out) == 2 * 9 and out.groupby("form").image.apply(lambda s: s.is_unique).all()
    for _, part in out.groupby("form", sort=False):
        assert part.image.tolist() == table.image.tolist()  # the table's order
        np.testing.assert_array_equal(part.fold, folds)
        np.testing.assert_allclose(part.probability, folds / 10)  # its own fold's model
    assert out.form.unique().tolist() == ["original", "LR (bicubic)"]
    # A smoke run: only fold 0's model, so only fold 0's images are predicted.
    smoke = classify.predict_out_of_fold({0: models[0]}, forms, table)
    assert smoke.image.tolist() == 2 * table.image[folds == 0].tolist()
    with pytest.raises(ValueError, match="no image is in test fold 5"):
        classify.predict_out_of_fold({5: _FoldModel(5)}, forms, table)
    with pytest.raises(ValueError, match="has 2 images for 9 rows"):
        classify.predict_out_of_fold(models, {"x": images[:2]}, table)
