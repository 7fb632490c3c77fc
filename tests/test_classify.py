"""The pneumonia classifier: architecture, images in, augmentation, determinism, saving, and
the evaluation of forms (its statistics are tested in test_stats.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from cxrsr_utils import (
    classifier,
    classifier_images,
    classify,
    data,
    plots,
    provenance,
    radiographs,
    sources,
    stats,
)
from cxrsr_utils.params import Paths, load_params

TINY = 96  # smallest sizes still pass five conv+pool stages (>= 94); keeps CPU tests fast


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    keras.utils.set_random_seed(0)
    return classifier.build_classifier(TINY)


@pytest.fixture(scope="module")
def kermany_sample(kermany_root: Path) -> tuple[list[Path], np.ndarray]:
    files = []
    for name in data.KERMANY_CLASSES:
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
    model_a, hist_a = classifier.train_classifier(images[train], labels[train], **kwargs)
    model_b, hist_b = classifier.train_classifier(images[train], labels[train], **kwargs)
    assert list(hist_a.columns) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert hist_a["epoch"].tolist() == [1, 2]
    assert np.isfinite(hist_a.drop(columns="epoch").to_numpy()).all()
    pd.testing.assert_frame_equal(hist_a, hist_b, check_exact=True)
    for wa, wb in zip(model_a.get_weights(), model_b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    # The seed matters: another one trains differently.
    _, hist_c = classifier.train_classifier(images[train], labels[train], **{**kwargs, "seed": 8})
    assert not hist_a["loss"].equals(hist_c["loss"])


def test_training_rejects_bad_labels() -> None:
    images = np.zeros((2, TINY, TINY), np.float32)
    with pytest.raises(ValueError, match="0 \\(NORMAL\\) or 1"):
        classifier.train_classifier(images, [0, 2], image_size=TINY, epochs=1)
    with pytest.raises(ValueError, match="one label each"):
        classifier.train_classifier(images, [0], image_size=TINY, epochs=1)


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
            "file": [f"img{i}.png" for i in range(len(labels))],
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
    assert ref["auc"] == pytest.approx(stats.roc_auc(labels, [0.1] * 3 + [0.9] * 5))
    # Discordant: sr wrong where original right on img1, img2, img7; never the reverse.
    assert (sr["only_reference_correct"], sr["only_form_correct"]) == (3, 0)
    assert sr["mcnemar_p"] == pytest.approx(scipy_stats.binomtest(3, 3, 0.5).pvalue)
    assert np.isnan(ref["mcnemar_p"])
    assert ref["accuracy_low"] <= 7 / 8 <= ref["accuracy_high"]
    assert ref["loss"] == pytest.approx(-np.mean(np.log([0.9] * 7 + [0.1])))
    rounded = stats.round_table(summary.reset_index(), 2)
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
    assert list(preds.columns) == ["file", "label", "form", "probability", "prediction", "correct"]
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


# -- notebook 05's steps ----------------------------------------------------------------------


def _images(n_train: int = 4, n_test: int = 4) -> classify.KermanyImages:
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"path": [f"t{i}.png" for i in range(n_train)], "sha256": "0" * 64})
    test = pd.DataFrame({"image": [f"NORMAL/{i}.png" for i in range(n_test)]})
    return classify.KermanyImages(
        train,
        test,
        rng.random((n_train, TINY, TINY)).astype(np.float32),
        np.arange(n_train) % 2,
        rng.random((n_test, TINY, TINY)).astype(np.float32),
        np.arange(n_test) % 2,
    )


def test_classifier_for_trains_with_the_profiles_settings(tmp_path, monkeypatch) -> None:
    seen = {}
    history = pd.DataFrame({"epoch": [1], "loss": [0.7]})

    def spy(folder, settings, train_images, train_labels, **kwargs):
        seen.update(folder=folder, settings=settings, x=train_images, y=train_labels, **kwargs)
        return "model", history, seen.get("loaded", False)

    monkeypatch.setattr(classify, "train_or_load", spy)
    params = load_params("quick", {"classifier.epochs": 3, "seed": 4})
    paths = Paths(params, root=tmp_path)
    images = _images()
    clf = classify.classifier_for(params, paths, images)
    cfg = params.classifier
    assert (clf.model, clf.origin) == ("model", "trained for 3 epochs")
    assert seen.pop("folder") == paths.classifier
    assert seen.pop("settings") == {
        **cfg.model_dump(mode="json"),
        "seed": 4,
        "train_data": data.manifest_digest(images.train),
    }
    assert seen.pop("x") is images.train_x and seen.pop("y") is images.train_y
    assert seen.pop("val_images") is images.test_x and seen.pop("val_labels") is images.test_y
    assert seen == {
        "image_size": cfg.image_size,
        "epochs": 3,
        "batch_size": cfg.batch_size,
        "learning_rate": cfg.learning_rate,
        "shear_degrees": cfg.shear_degrees,
        "zoom": cfg.zoom,
        "horizontal_flip": cfg.horizontal_flip,
        "seed": 4,
    }
    pd.testing.assert_frame_equal(pd.read_csv(paths.tables / "05_training_history.csv"), history)
    seen["loaded"] = True
    assert classify.classifier_for(params, paths, images).origin.startswith("loaded")


def test_classifier_for_takes_a_given_model_and_records_it(tiny_model, tmp_path) -> None:
    given = classifier.save_classifier(tiny_model, tmp_path / "given.keras")
    params = load_params("quick", {"classifier.model_path": str(given)})
    paths = Paths(params, root=tmp_path)
    clf = classify.classifier_for(params, paths, _images())
    assert clf.history is None and str(given) in clf.origin
    assert classifier.count_trainable_parameters(clf.model) == (
        classifier.count_trainable_parameters(tiny_model)
    )
    recorded = provenance.sources_used(paths)["classifier"]
    assert recorded == {"path": str(given), "sha256": sources.sha256_file(given)}
    assert not paths.classifier.exists()  # nothing trained


def test_sample_predictions_show_the_first_images_of_each_class() -> None:
    labels = np.array([1, 0, 0, 1, 0, 1, 1])
    original = np.arange(7)[:, None, None] * np.ones((1, 4, 4))
    forms = {"original": original, "LR (bicubic)": original, "SR pretrained": original + 10}
    prob = np.array([0.1, 0.2, 0.3, 0.6, 0.5, 0.4, 0.9])
    predictions = pd.concat(
        [
            pd.DataFrame({"form": form, "probability": prob, "prediction": (prob >= 0.5) * 1})
            for form in forms
        ],
        ignore_index=True,
    )
    rows = classify.sample_predictions(forms, predictions, labels, per_class=2)
    assert len(rows) == 2  # original and SR pretrained; LR is not shown
    picks = [0, 1, 2, 3]  # the first two of each class, in the test order
    assert [float(img[0, 0]) for _, img in rows[1]] == [p + 10 for p in picks]
    assert rows[0][0][0] == "original: true PNEUMONIA\npred NORMAL (p=0.10)"
    assert rows[1][3][0] == "SR pretrained: true PNEUMONIA\npred PNEUMONIA (p=0.60)"
    fig = plots.prediction_grid(rows)
    assert len(fig.axes) == 2 * 4  # one row per form, one column per picked image
    del forms["SR pretrained"]
    assert len(classify.sample_predictions(forms, predictions, labels, per_class=2)) == 1


def test_load_kermany_and_forms_from_a_prepared_run(tmp_path, mirror) -> None:
    from .test_data import TINY as TINY_DATA

    overrides = {**TINY_DATA, "classifier.image_size": TINY, "evaluate.include_general_v3": False}
    params = load_params("quick", {**overrides, "device": "cpu"})
    paths = Paths(params, root=tmp_path)
    tables = data.prepare_all(params, paths.work)
    data.save_tables(tables, paths)
    images = classify.load_kermany(params, paths)
    manifest = tables["manifest"]
    kermany = manifest[(manifest.dataset == "kermany") & (manifest.role == "hr")]
    assert len(images.train) == (kermany.fold != 0).sum() == len(images.train_x)
    n_test = (kermany.fold == 0).sum()
    assert images.test.hr.map(lambda p: p.is_file()).all() and len(images.test_x) == n_test
    assert images.train_x.shape[1:] == (TINY, TINY)
    assert images.test_y.tolist() == images.test.label.astype(int).tolist()
    assert images.describe().startswith(f"train: {len(images.train)} images (")
    forms = classify.load_forms(params, paths, images)
    assert list(forms) == ["original", "LR (bicubic)", "SR pretrained"]
    assert forms["original"] is images.test_x
    assert all(f.shape == (n_test, TINY, TINY) for f in forms.values())
    assert any(paths.sr.glob("pretrained*/kermany/*/*.png"))  # written as notebook 04 does
