"""Notebook 01's data preparation on real mirror images."""

import shutil

import pandas as pd
import pytest

from cxrsr_utils import data, radiographs
from cxrsr_utils.layout import StudyLayout
from cxrsr_utils.params import load_params

TINY = {
    "nih.n_finetune": 4,
    "nih.n_eval": 3,
    "nih.multiscale_originals": 1,
    "nih.n_crops": 2,
    "nih.crop_size": 64,
    "nih.max_side": 128,
    "nih.eval_hr_size": 64,
    "nih.shortest_edge": 100,
    "kermany.n_per_class": 4,
    "kermany.hr_size": 64,
    "kermany.test_fraction": 0.25,
}


def test_no_patient_in_both_nih_splits(nih_images):
    cfg = load_params("quick").nih
    split = data.split_nih(
        nih_images, cfg.model_copy(update={"n_finetune": None, "n_eval": None}), seed=3
    )
    by_split = split.groupby("split")["patient"].apply(set)
    assert not by_split["eval"] & by_split["finetune"]
    assert len(split) == len(nih_images)


def test_split_keeps_multi_image_patients_together():
    names = [f"{p:08d}_{k:03d}.png" for p in range(30) for k in range(3)]
    cfg = load_params("quick").nih.model_copy(update={"n_finetune": None, "n_eval": None})
    split = data.split_nih(names, cfg, seed=0)
    assert (split.groupby("patient")["split"].nunique() == 1).all()
    assert split[split.split == "eval"]["patient"].nunique() == round(0.2 * 30)


def _tiny_params(**extra):
    return load_params("quick", {**TINY, **extra})


def test_prepare_all_is_deterministic_and_complete(tmp_path, mirror):
    params = _tiny_params()
    first = data.prepare_all(params, tmp_path / "a")
    second = data.prepare_all(params, tmp_path / "b")
    d1, d2 = (data.manifest_digest(t["manifest"]) for t in (first, second))
    assert d1 == d2
    m = first["manifest"]
    assert (m["path"].map(lambda p: (tmp_path / "a" / "data" / p).is_file())).all()
    counts = first["counts"].set_index("part")["images"]
    assert (
        counts["originals"] == 4 and counts["multiscale"] == 4 and counts["multiscale crops"] == 2
    )
    # meta_info lists exactly the fine-tune files, relative to the fine-tune root
    ft_root = tmp_path / "a" / "data" / "nih" / "finetune"
    lines = (ft_root / "meta_info.txt").read_text().split()
    assert len(lines) == 10 and all((ft_root / line).is_file() for line in lines)
    # HR/LR pairs have the configured sizes and a x4 ratio
    hr = m[(m.dataset == "kermany") & (m.role == "hr")]
    lr = m[(m.dataset == "kermany") & (m.role == "lr")]
    assert set(hr.width) == {64} and set(lr.width) == {16} and len(hr) == len(lr) == 8
    assert set(first["kermany_split"].split) == {"train", "test"}
    assert (first["kermany_split"].groupby("label").size() == 4).all()


def test_seed_changes_the_data(tmp_path, mirror):
    a = data.prepare_all(_tiny_params(), tmp_path / "a")
    b = data.prepare_all(_tiny_params(seed=1), tmp_path / "b")
    assert data.manifest_digest(a["manifest"]) != data.manifest_digest(b["manifest"])


def test_changed_params_start_afresh(tmp_path, mirror):
    data.prepare_all(_tiny_params(), tmp_path)
    t = data.prepare_all(_tiny_params(**{"nih.n_crops": 1}), tmp_path)
    crops = list((tmp_path / "data" / "nih" / "finetune" / "crops").iterdir())
    assert len(crops) == 1 and (t["counts"].set_index("part")["images"]["multiscale crops"] == 1)


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
            "nih.n_eval": None,
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


def test_sample_images_cover_every_kind(tmp_path, mirror):
    t = data.prepare_all(_tiny_params(), tmp_path)
    samples = data.sample_images(t["manifest"], tmp_path)
    assert len(samples) == 9
    assert all(0 <= img.min() and img.max() <= 1 for _, img in samples)


def test_counts_table_shape():
    manifest = pd.DataFrame(
        {
            "dataset": ["nih"] * 3 + ["kermany"] * 2,
            "split": ["finetune"] * 3 + ["test"] * 2,
            "role": ["original", "multiscale", "crop", "hr", "lr"],
            "label": [None] * 3 + [1, 1],
        }
    )
    counts = data.counts_table(manifest)
    assert counts.set_index("part")["images"]["total"] == 3
    assert counts.iloc[-1].tolist() == ["Kermany test (unseen)", "PNEUMONIA", 1]


def test_multiscale_copies_follow_real_esrgan():
    cfg = load_params("quick").nih
    copies = data.multiscale_copies(
        radiographs.resize(__import__("numpy").ones((10, 10)), (600, 400)), cfg
    )
    assert [c.shape for c in copies] == [(300, 450), (200, 300), (133, 200), (400, 600)]


def test_too_small_for_crops_is_a_clear_error(tmp_path, mirror):
    with pytest.raises(ValueError, match="crop_size"):
        data.prepare_all(_tiny_params(**{"nih.crop_size": 512}), tmp_path)


def test_save_tables_writes_the_manifest_where_notebooks_read_it(tmp_path):
    layout = StudyLayout(tmp_path)
    tables = {
        key: pd.DataFrame({"path": [f"{key}.png"], "sha256": ["ab" * 32]})
        for key in ("manifest", "counts", "excluded", "kermany_split", "nih_split", "inputs")
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
    ]
    assert pd.read_csv(layout.tables / "01_nih_split.csv").path.tolist() == ["nih_split.png"]
