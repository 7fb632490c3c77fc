"""Notebook 01's data preparation, on small synthetic data sets and on real mirror images."""

import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cxrsr_utils.core.layout import StudyLayout
from cxrsr_utils.core.params import load_params
from cxrsr_utils.data_prep import nih as nih_data
from cxrsr_utils.data_prep import splits
from cxrsr_utils.data_prep import steps as data
from cxrsr_utils.degradation import pairs as pair_images
from cxrsr_utils.degradation.options import degradation_options
from cxrsr_utils.images import radiographs

TINY = {
    "nih.n_finetune": 4,
    "nih.n_val": 2,
    "nih.n_test": 3,
    "nih.multiscale_originals": 1,
    "nih.n_crops": 2,
    "nih.crop_size": 64,
    "nih.max_side": 128,
    "nih.eval_hr_size": 80,  # the two-stage degradation needs at least 76
    "nih.shortest_edge": 100,
    "kermany.n_per_class": 4,
    "kermany.hr_size": 80,
    "kermany.folds": 3,
}


def _tiny_params(**extra):
    return load_params("quick", {**TINY, **extra})


def _noise(shape, seed, dtype=np.uint8):
    top = np.iinfo(dtype).max
    return np.random.default_rng(seed).integers(0, top, size=shape, endpoint=True).astype(dtype)


@pytest.fixture
def synthetic(tmp_path):
    """Small NIH and Kermany folders of noise images, in the data sets' name forms: NIH
    patients with one to three images, Kermany patients with one or two. In each NIH split one
    image is 150 x 70, smaller than the 80 px evaluation crop. Returns the parameters that
    read them and {split: that image's name}."""
    nih = tmp_path / "nih" / "images"
    nih.mkdir(parents=True)
    names = [f"{p + 1:08d}_{k:03d}.png" for p in range(12) for k in range(1 + p % 3)]
    for i, name in enumerate(names):
        Image.fromarray(_noise((150 + i % 3 * 8, 140 + 6 * i), seed=i)).save(nih / name)
    kermany = tmp_path / "chest_xray" / "train"
    files = {
        "NORMAL": [f"IM-{p:04d}-000{k}.jpeg" for p in range(3) for k in (1, 2)]
        + [f"NORMAL2-IM-{p:04d}-0001.jpeg" for p in range(3)],
        "PNEUMONIA": [f"person{p}_bacteria_{p + k}.jpeg" for p in range(4) for k in (1, 3)],
    }
    for class_name, class_files in files.items():
        (kermany / class_name).mkdir(parents=True)
        for i, name in enumerate(class_files):
            Image.fromarray(_noise((120 + i, 100 + 2 * i), seed=100 + i)).save(
                kermany / class_name / name, quality=90
            )
    params = _tiny_params(
        **{
            "nih.root": str(tmp_path / "nih"),
            "kermany.root": str(tmp_path / "chest_xray"),
            "nih.n_finetune": None,
            "nih.n_val": None,
            "nih.n_test": None,
            "nih.val_fraction": 0.2,
            "nih.test_fraction": 0.3,
            "kermany.n_per_class": None,
        }
    )
    split = splits.split_nih(names, params.nih, params.seed)
    small = {name: part.file.iloc[-1].name for name, part in split.groupby("split")}
    for name in small.values():
        Image.fromarray(_noise((70, 150), seed=99)).save(nih / name)
    return params, small


def _prepared(params, work):
    tables = data.prepare_all(params, work)
    return tables, tables["manifest"]


def test_every_nih_image_is_in_one_split_and_no_patient_in_two(tmp_path, synthetic):
    params, small = synthetic
    tables, m = _prepared(params, tmp_path / "work")
    split = tables["nih_split"]
    names = sorted(p.name for p in (tmp_path / "nih" / "images").iterdir())
    assert sorted(split.file) == names and len(names) == 24  # no caps: every image, once
    assert (split.groupby("patient")["split"].nunique() == 1).all()
    assert (tables["patients"]["patients_in_another"] == 0).all()
    nih = m[m.dataset == "nih"]
    used = nih[nih.role.isin(["original", "hr"])]
    assert sorted(used.source) == sorted(set(names) - {small["val"], small["test"]})
    both = used.merge(split, left_on="source", right_on="file", suffixes=("", "_table"))
    assert len(both) == len(used) and (both.split == both.split_table).all()
    by_split = nih.groupby("split")["patient"].apply(set)
    assert not by_split["val"] & by_split["test"]
    assert not (by_split["val"] | by_split["test"]) & by_split["finetune"]


def test_evaluation_hr_is_the_native_centre_crop(tmp_path, synthetic):
    params, _ = synthetic
    tables, m = _prepared(params, tmp_path / "work")
    layout = StudyLayout(tmp_path / "work")
    hr = m[(m.dataset == "nih") & (m.role == "hr")]
    assert set(hr.split) == {"val", "test"}
    for row in hr.itertuples():
        original = radiographs.read_radiograph(tmp_path / "nih" / "images" / row.source).pixels
        h, w = original.shape
        assert (h, w) != (80, 80)
        top, left = (h - 80) // 2, (w - 80) // 2
        saved = radiographs.read_radiograph(layout.data / row.path).pixels
        np.testing.assert_array_equal(saved, original[top : top + 80, left : left + 80])
        lr = radiographs.read_radiograph(layout.data / row.path.replace("/hr/", "/lr/")).pixels
        expected = pair_images.bicubic_lr(saved.astype(np.float32) / 255, 4)
        np.testing.assert_array_equal(lr, radiographs.to_pixels(expected, 255))


def test_too_small_images_are_excluded_with_the_reason(tmp_path, synthetic):
    params, small = synthetic
    tables, m = _prepared(params, tmp_path / "work")
    excluded = tables["excluded"].assign(name=lambda t: t.file.str.split("/").str[-1])
    assert sorted(excluded.name) == sorted([small["val"], small["test"]])
    assert (excluded.dataset == "nih").all()
    reasons = excluded.set_index("name").reason
    assert reasons[small["test"]] == (
        "150x70 is smaller than the 80x80 centre crop of the test HR (nih.eval_hr_size)"
    )
    assert reasons[small["val"]].endswith("of the val HR (nih.val_hr_size)")
    # max_side and the crop concern only the evaluation: a small fine-tune original is kept
    assert small["finetune"] in set(m[m.role == "original"].source)
    counts = tables["counts"].set_index(["set", "part"])
    assert counts.loc[("Excluded", "NIH")].tolist() == [2, 2]
    assert (
        counts.loc[("NIH test (same dataset)", "HR/LR pairs"), "images"]
        == len(tables["nih_split"].query("split == 'test'")) - 1
    )


def test_degraded_lr_is_reproducible_from_the_seed(tmp_path, synthetic):
    params, _ = synthetic
    tables, m = _prepared(params, tmp_path / "work")
    layout = StudyLayout(tmp_path / "work")
    options = degradation_options(**params.degradation.model_dump())
    degraded = m[m.role == "lr_degraded"]
    assert set(degraded.dataset) == {"nih", "kermany"}
    assert set(degraded[degraded.dataset == "nih"].split) == {"test"}  # not validation
    assert len(degraded) == len(m[(m.role == "hr") & (m.split != "val")])
    for row in degraded.groupby("dataset").head(2).itertuples():
        dataset = "nih" if row.dataset == "nih" else "kermany"
        folder = layout.pair_folder(dataset, "lr_degraded")
        image = (layout.data / row.path).relative_to(folder).as_posix()
        hr = radiographs.read_radiograph(layout.pair_folder(dataset, "hr") / image).as_float()
        seed = pair_images.degradation_seed(params.seed, dataset, image)
        again = radiographs.to_pixels(pair_images.degraded_lr(hr, seed, options, 4), 255)
        np.testing.assert_array_equal(radiographs.read_radiograph(folder / image).pixels, again)
        bicubic = radiographs.read_radiograph(layout.pair_folder(dataset, "lr") / image).pixels
        assert again.shape == bicubic.shape and not np.array_equal(again, bicubic)
    seeds = {pair_images.degradation_seed(0, "nih", f"{i}.png") for i in range(50)}
    assert len(seeds) == 50


def test_too_small_hr_for_the_degradation_is_a_clear_error(tmp_path):
    params = _tiny_params(**{"nih.eval_hr_size": 64})
    with pytest.raises(ValueError, match="nih.eval_hr_size=64 is too small"):
        data.prepare_all(params, tmp_path)


def test_kermany_folds_group_patients_and_cover_every_image(tmp_path, synthetic):
    params, _ = synthetic
    tables, m = _prepared(params, tmp_path / "work")
    split = tables["kermany_split"]
    assert list(split.columns) == [
        "file",
        "label",
        "class_name",
        "patient",
        "fold",
        "width",
        "height",
        "note",
    ]
    assert len(split) == 9 + 8 and split.file.is_unique  # every image, once
    assert set(split.fold) == {0, 1, 2}
    assert (split.groupby("patient")["fold"].nunique() == 1).all()
    assert split.groupby("patient").size().max() == 2  # the two-image patients stay together
    assert split.loc[split.file == "IM-0000-0001.jpeg", ["width", "height"]].values.tolist() == [
        [100, 120]
    ]
    hr = m[(m.dataset == "kermany") & (m.role == "hr")]
    assert set(hr.split) == {"cv"} and len(hr) == len(split)
    merged = hr.merge(split, left_on="source", right_on="file", suffixes=("", "_split"))
    assert (merged.fold == merged.fold_split).all()
    assert (merged.patient == merged.patient_split).all()
    written = m[m.dataset == "kermany"].path.map(lambda p: (tmp_path / "work/data" / p).is_file())
    assert written.all()
    counts = tables["counts"]
    folds = counts[counts.set.str.startswith("Kermany fold")]
    assert folds.images.sum() == len(split)


def _crop_rows(m):
    crops = m[m.role == "crop"]
    sources = m[m.role == "multiscale"].assign(name=lambda t: t.path.str.split("/").str[-1])
    return crops.merge(sources, left_on="source", right_on="name", suffixes=("", "_source"))


def test_crops_are_distinct_and_smaller_than_their_source(tmp_path, synthetic):
    params, _ = synthetic
    params = params.model_copy(update={"nih": params.nih.model_copy(update={"n_crops": 12})})
    _, m = _prepared(params, tmp_path / "work")
    finetune = m[m.split == "finetune"]
    crops = _crop_rows(finetune)
    assert len(crops) == 12
    others = set(finetune[finetune.role != "crop"].sha256)
    assert crops.sha256.is_unique and not set(crops.sha256) & others
    assert (crops.width <= crops.width_source).all() and (crops.height <= crops.height_source).all()
    assert (crops.width * crops.height < crops.width_source * crops.height_source).all()


def test_draw_crops_never_takes_a_whole_copy():
    copies = [("exact", _noise((64, 64), 1)), ("larger", _noise((64, 66), 2))]
    crops = nih_data.draw_crops(copies, 3, 64, seed=0, taken=set())
    assert [name for name, _ in crops] == ["larger"] * 3  # 3 positions, all distinct
    with pytest.raises(ValueError, match="nih.n_crops=4"):
        nih_data.draw_crops(copies, 4, 64, seed=0, taken=set())
    with pytest.raises(ValueError, match="larger than a 64 x 64 crop"):
        nih_data.draw_crops(copies[:1], 1, 64, seed=0, taken=set())


def test_draw_crops_redraws_a_crop_equal_to_another_training_file():
    copy = _noise((64, 65), 3)
    left = nih_data.pixel_digest(copy[:, :64])
    crops = nih_data.draw_crops([("c", copy)], 1, 64, seed=0, taken={left})
    np.testing.assert_array_equal(crops[0][1], copy[:, 1:])
    with pytest.raises(ValueError, match="Lower nih.n_crops"):  # a flat copy has one crop
        nih_data.draw_crops([("flat", np.zeros((64, 80), np.uint8))], 2, 64, seed=0, taken=set())


def test_prepare_all_is_deterministic_and_complete(tmp_path, mirror):
    params = _tiny_params()
    first = data.prepare_all(params, tmp_path / "a")
    second = data.prepare_all(params, tmp_path / "b")
    d1, d2 = (data.manifest_digest(t["manifest"]) for t in (first, second))
    assert d1 == d2
    m = first["manifest"]
    assert (m["path"].map(lambda p: (tmp_path / "a" / "data" / p).is_file())).all()
    counts = first["counts"].set_index(["set", "part"])["images"]
    assert counts["NIH fine-tune"].to_dict() == {
        "originals": 4,
        "multiscale": 4,
        "multiscale crops": 2,
        "total": 10,
    }
    assert counts[("NIH validation", "HR/LR pairs")] == 2
    assert counts[("NIH test (same dataset)", "HR/LR pairs")] == 3
    # meta_info lists exactly the fine-tune files, relative to the fine-tune root
    ft_root = tmp_path / "a" / "data" / "nih" / "finetune"
    lines = (ft_root / "meta_info.txt").read_text().split()
    assert len(lines) == 10 and all((ft_root / line).is_file() for line in lines)
    # HR/LR pairs have the configured sizes and a x4 ratio
    for dataset, split, roles in (
        ("kermany", "cv", ("hr", "lr", "lr_degraded")),
        ("nih", "test", ("hr", "lr", "lr_degraded")),
        ("nih", "val", ("hr", "lr")),
    ):
        part = m[(m.dataset == dataset) & (m.split == split)]
        assert set(part.role) == set(roles)
        assert set(part[part.role == "hr"].width) == {80}
        assert set(part[part.role != "hr"].width) == {20}
    assert (first["kermany_split"].groupby("label").size() == 4).all()
    # the mirror's shortest-edge copy T1 is 64 x 64, the crop's size: never taken whole
    crops = _crop_rows(m[m.split == "finetune"])
    assert not set(crops.sha256) & set(m[m.role != "crop"].sha256)
    assert (crops.width * crops.height < crops.width_source * crops.height_source).all()


def test_seed_changes_the_data(tmp_path, mirror):
    a = data.prepare_all(_tiny_params(), tmp_path / "a")
    b = data.prepare_all(_tiny_params(seed=1), tmp_path / "b")
    assert data.manifest_digest(a["manifest"]) != data.manifest_digest(b["manifest"])


def test_changed_params_start_afresh(tmp_path, mirror):
    data.prepare_all(_tiny_params(), tmp_path)
    t = data.prepare_all(_tiny_params(**{"nih.n_crops": 1}), tmp_path)
    crops = list((tmp_path / "data" / "nih" / "finetune" / "crops").iterdir())
    counts = t["counts"].set_index("part")["images"]
    assert len(crops) == 1 and counts["multiscale crops"] == 1


def test_corrupt_images_are_reported_and_excluded(tmp_path, nih_images, kermany_root):
    nih = tmp_path / "nih"
    (nih / "images").mkdir(parents=True)
    for src in nih_images[:8]:
        shutil.copy(src, nih / "images" / src.name)
    victims = sorted((nih / "images").iterdir())[:2]
    victims[0].write_bytes(victims[0].read_bytes()[:5000])  # truncated
    victims[1].write_bytes(b"\x89PNG garbage")  # corrupt
    params = _tiny_params(
        **{
            "nih.root": str(nih),
            "nih.n_finetune": None,
            "nih.n_val": None,
            "nih.n_test": None,
            "kermany.root": str(kermany_root),
        }
    )
    tables = data.prepare_all(params, tmp_path / "work")
    excluded = tables["excluded"]
    assert sorted(excluded["file"].map(lambda f: f.split("/")[-1])) == sorted(
        v.name for v in victims
    )
    assert excluded["reason"].str.contains("corrupt or truncated").all()
    used = set(tables["inputs"].query("dataset == 'nih'")["file"])
    assert len(used) == 6 and not used & {v.name for v in victims}


def test_sample_images_show_every_kind_and_a_real_crop(tmp_path, synthetic):
    params, _ = synthetic
    t = data.prepare_all(params, tmp_path)
    samples = data.sample_images(t["manifest"], tmp_path)
    titles = [title for title, _ in samples]
    assert len(samples) == 12 and titles[1:3] == [
        "NIH multiscale copy (crop source)",
        "NIH crop of that copy",
    ]
    assert all(0 <= img.min() and img.max() <= 1 for _, img in samples)
    copy, crop = samples[1][1], samples[2][1]
    assert crop.shape == (64, 64) and crop.size < copy.size


def test_counts_table_shape():
    manifest = pd.DataFrame(
        {
            "dataset": ["nih"] * 5 + ["kermany"] * 2,
            "split": ["finetune"] * 3 + ["test", "val", "cv", "cv"],
            "role": ["original", "multiscale", "crop", "hr", "hr", "hr", "lr"],
            "label": [None] * 5 + [1, 1],
            "fold": [None] * 5 + [2, 2],
            "patient": ["a", "a", "a", "b", "c", "p1", "p1"],
        }
    )
    excluded = pd.DataFrame({"file": ["x/00000009_000.png"], "dataset": ["nih"], "reason": ["r"]})
    counts = data.counts_table(manifest, excluded).set_index(["set", "part"])
    assert counts.loc[("NIH fine-tune", "total")].tolist() == [3, 1]
    assert counts.loc[("NIH test (same dataset)", "HR/LR pairs")].tolist() == [1, 1]
    assert counts.loc[("Kermany fold 2 (unseen)", "PNEUMONIA")].tolist() == [1, 1]
    assert counts.loc[("Excluded", "NIH")].tolist() == [1, 1]
    assert counts.loc[("Excluded", "Kermany")].tolist() == [0, 0]


def test_multiscale_copies_follow_real_esrgan():
    cfg = load_params("quick").nih
    copies = nih_data.multiscale_copies(radiographs.resize(np.ones((10, 10)), (600, 400)), cfg)
    assert [c.shape for c in copies] == [(300, 450), (200, 300), (133, 200), (400, 600)]


def test_too_small_for_crops_is_a_clear_error(tmp_path, mirror):
    with pytest.raises(ValueError, match="crop_size"):
        data.prepare_all(_tiny_params(**{"nih.crop_size": 512}), tmp_path)


def test_save_tables_writes_the_manifest_where_notebooks_read_it(tmp_path):
    layout = StudyLayout(tmp_path)
    tables = {
        key: pd.DataFrame({"path": [f"{key}.png"], "sha256": ["ab" * 32]})
        for key in ("manifest", "inputs", *data.TABLES)
    }
    data.save_tables(tables, layout)
    pd.testing.assert_frame_equal(pd.read_csv(layout.data_manifest), tables["manifest"])
    assert not layout.data_manifest.with_suffix(".md").exists()
    written = sorted(p.name for p in layout.tables.iterdir())
    assert written == [
        "01_counts.csv",
        "01_counts.md",
        "01_excluded.csv",
        "01_excluded.md",
        "01_kermany_split.csv",
        "01_nih_split.csv",
        "01_patients.csv",
        "01_patients.md",
    ]
    assert pd.read_csv(layout.tables / "01_nih_split.csv").path.tolist() == ["nih_split.png"]
